/* Feeds (docs/feed.md, "Impressions, clicks and attribution"; "API and pages").

   - Impressions: a card counts as seen when at least half of it has been on screen for 300 ms
     (IntersectionObserver); in the full-screen layout a card on screen for 2 s is also a view.
     Reports are batched and sent every 1.5 s, and when the page is hidden or left (fetch with
     keepalive, which outlives the page; sendBeacon where fetch cannot). The server counts each
     (page, position, kind) once, so a report sent twice does no harm.
   - Clicks need no script: every card links through /feed/go/..., which logs the click.
   - Full screen: one card at a time (CSS scroll snapping: swipe, wheel, trackpad), plus the arrow
     keys, j/k, Page Up/Down and space. A video plays muted while it is on screen when it has a
     playable source (asked of /api/v1/videos/{id} the first time); otherwise its cover stays.
   - More: the next page is fetched as a fragment and appended when the end comes near. */

const feed = document.querySelector("[data-feed]");

if (feed) {
  const single = feed.dataset.layout === "single";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const queue = [];
  const queued = new Set();
  let timer = null;

  function send(events) {
    const body = JSON.stringify({ events });
    try {
      fetch("/api/v1/feed/events", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        credentials: "same-origin",
        keepalive: true,
        body,
      }).catch(() => {});
    } catch {
      navigator.sendBeacon?.("/api/v1/feed/events", new Blob([body], { type: "application/json" }));
    }
  }

  function flush() {
    clearTimeout(timer);
    timer = null;
    while (queue.length) send(queue.splice(0, 100));
  }

  function report(card, kind) {
    const key = `${card.dataset.serve}:${card.dataset.position}:${kind}`;
    if (queued.has(key)) return;
    queued.add(key);
    queue.push({ serve: card.dataset.serve, position: Number(card.dataset.position), kind });
    if (queue.length >= 100) flush();
    else if (!timer) timer = setTimeout(flush, 1500);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flush();
  });
  window.addEventListener("pagehide", flush);

  // --- seen: >= 50% on screen for >= 300 ms (and, full screen, a view after 2 s) -------------------
  const waiting = new Map();
  const root = single ? feed : null;
  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const card = entry.target;
      const visible = entry.isIntersecting && entry.intersectionRatio >= 0.5;
      if (visible && !waiting.has(card)) {
        const timers = [setTimeout(() => report(card, "impression"), 300)];
        if (single) timers.push(setTimeout(() => report(card, "view"), 2000));
        waiting.set(card, timers);
      } else if (!visible && waiting.has(card)) {
        waiting.get(card).forEach(clearTimeout);
        waiting.delete(card);
      }
      if (single) playIfVideo(card, visible);
    }
  }, { root, threshold: [0, 0.5, 1] });

  // --- full screen: videos, keys, height ----------------------------------------------------------
  const sources = new Map();

  async function sourceOf(id) {
    if (!sources.has(id)) {
      sources.set(id, fetch(`/api/v1/videos/${id}`, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((v) => (v && v.playback_url ? v.playback_url : null))
        .catch(() => null));
    }
    return sources.get(id);
  }

  async function playIfVideo(card, visible) {
    const video = card.querySelector("video[data-video]");
    if (!video || video.dataset.failed) return;
    if (!visible) {
      video.pause();
      return;
    }
    if (!video.src) {
      const src = await sourceOf(video.dataset.video);
      if (!src) return; // no playable source: the cover stays
      video.addEventListener("error", () => {
        video.dataset.failed = "true"; // unplayable: back to the cover for good
        video.hidden = true;
      });
      video.src = src;
    }
    video.hidden = false;
    video.play().catch(() => {}); // autoplay refused: the cover (poster) stays
  }

  function fitHeight() {
    const top = feed.getBoundingClientRect().top + window.scrollY;
    feed.style.setProperty("--feed-top", `${Math.max(0, Math.round(top))}px`);
  }

  if (single) {
    fitHeight();
    window.addEventListener("resize", fitHeight);
    feed.tabIndex = -1;
    document.addEventListener("keydown", (event) => {
      if (event.target.closest && event.target.closest("input, textarea, select")) return;
      const next = ["ArrowDown", "PageDown", "j", " "].includes(event.key);
      const back = ["ArrowUp", "PageUp", "k"].includes(event.key);
      if (!next && !back) return;
      event.preventDefault();
      feed.scrollBy({ top: (next ? 1 : -1) * feed.clientHeight, behavior: "smooth" });
    });
  }

  // --- more ---------------------------------------------------------------------------------------
  let loading = false;
  const more = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root, rootMargin: single ? "200% 0px" : "800px 0px" });

  async function loadMore() {
    const holder = feed.querySelector(".feed-more[data-next]");
    if (!holder || loading) return;
    loading = true;
    more.unobserve(holder);
    const link = holder.querySelector("a");
    if (link) {
      link.dataset.label = link.textContent;
      link.textContent = feed.dataset.labelLoading || link.textContent;
    }
    try {
      const response = await fetch(`${holder.dataset.next}&partial=1`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const template = document.createElement("template");
      template.innerHTML = await response.text();
      const added = [...template.content.children];
      holder.replaceWith(...added);
      watch(added);
    } catch {
      if (link) link.textContent = link.dataset.label || link.textContent; // the plain link still works
    } finally {
      loading = false;
    }
  }

  function watch(nodes) {
    for (const node of nodes) {
      if (node.matches(".feed-card")) seen.observe(node);
      else if (node.matches(".feed-more[data-next]")) more.observe(node);
    }
  }

  watch([...feed.children]);
}

/* Ops exposure dashboard: the day-by-day figures and the Lorenz curve (Chart.js, vendored at
   /static/vendor/chart.umd.min.js). The server puts the numbers in a JSON script tag; this only
   reads them and draws: no markup is built from data. The table below the charts has the same
   numbers for those who cannot see them. */

function drawExposure() {
  const source = document.querySelector("[data-exposure-data]");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const percent = { callback: (v) => `${Math.round(v * 100)}%` };
  const days = document.querySelector("[data-exposure-days]");
  if (days && !days.dataset.drawn) {
    new window.Chart(days, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: data.names.gini, data: data.gini, borderColor: "#d93a19", backgroundColor: "#d93a19", tension: 0 },
          { label: data.names.bottom, data: data.bottom, borderColor: "#0d8a5f", backgroundColor: "#0d8a5f", tension: 0 },
          { label: data.names.new, data: data.new, borderColor: "#3566d6", backgroundColor: "#3566d6", tension: 0 },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { min: 0, max: 1, ticks: percent }, x: { ticks: { maxTicksLimit: 8, maxRotation: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    days.dataset.drawn = "true";
  }
  const lorenz = document.querySelector("[data-exposure-lorenz]");
  if (lorenz && !lorenz.dataset.drawn) {
    new window.Chart(lorenz, {
      type: "line",
      data: {
        datasets: [
          { label: data.names.lorenz, data: data.lorenz.map(([x, y]) => ({ x, y })), borderColor: "#d93a19",
            backgroundColor: "rgba(217, 58, 25, 0.12)", fill: true, pointRadius: 0, borderWidth: 2 },
          { label: data.names.equal, data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#8a8d93",
            borderDash: [4, 4], pointRadius: 0, borderWidth: 1 },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, parsing: false,
        scales: {
          x: { type: "linear", min: 0, max: 1, ticks: percent, title: { display: true, text: data.names.population } },
          y: { min: 0, max: 1, ticks: percent, title: { display: true, text: data.names.exposure } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
    lorenz.dataset.drawn = "true";
  }
}

if (document.querySelector("[data-exposure-data]")) {
  // Chart.js loads as a deferred classic script; modules run after it, but wait for it to be sure.
  if (window.Chart) drawExposure();
  else window.addEventListener("load", drawExposure, { once: true });
}
