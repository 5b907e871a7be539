/* trustlive live room: the viewer page and the creator console over one WebSocket
   (docs/live-protocol.md). The page is rendered by the server first and works without this module;
   this keeps it live: comments, purchases, the pinned card, the flash-sale countdown and stock,
   viewers and likes.

   Everything a viewer typed reaches the page through textContent, never innerHTML: no script ever
   runs from a comment or a name. */

const root = document.querySelector("[data-live]");
if (root) start(root);

function start(root) {
  const labels = JSON.parse(root.dataset.labels || "{}");
  const console_ = root.dataset.liveMode === "console";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const $ = (sel) => root.querySelector(sel);
  const say = (key, vars) => {
    let text = labels[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, String(v));
    return text;
  };

  // --- state ------------------------------------------------------------------------------------
  const state = {
    epoch: null, // the last frame's (epoch, offset): echoed back on reconnect to resume
    offset: null,
    skew: 0, // server clock minus ours, from each frame's ts (for the countdown)
    pin: readJSON("[data-initial-pin]"),
    sale: readJSON("[data-initial-sale]"),
    ended: root.dataset.status === "ended",
    banned: false,
  };
  if (root.dataset.serverNow) state.skew = Number(root.dataset.serverNow) - Date.now();

  function readJSON(sel) {
    const el = root.querySelector(sel);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch { return null; }
  }

  // --- connection: connect, resume, back off ----------------------------------------------------
  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let refSeq = 0;
  const pending = new Map(); // comment ref -> text, until acked or refused

  function wsURL() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${root.dataset.ws}`;
  }

  function setConn(status) {
    root.dataset.conn = status;
    const el = $("[data-conn]");
    if (el) {
      el.textContent = status === "open" ? "" : say(status === "connecting" ? "connecting" : "reconnecting");
      el.hidden = status === "open" || status === "closed";
    }
  }

  function connect() {
    if (state.ended || state.banned || !root.dataset.ws) return;
    clearTimeout(retryTimer);
    setConn(attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(wsURL());
    socket = ws;
    ws.addEventListener("open", () => {
      // The hub reads a hello as the first frame: resume from the last frame seen.
      const hello = { t: "hello" };
      if (state.epoch !== null && state.offset !== null) hello.resume = { e: state.epoch, o: state.offset };
      ws.send(JSON.stringify(hello));
      attempt = 0;
      setConn("open");
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ t: "ping" }), 25000);
      flushLikes();
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      handle(msg);
    });
    ws.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      if (socket !== ws) return;
      socket = null;
      for (const ref of pending.keys()) commentFailed(ref, say("not_sent"));
      if (event.code === 4404) ended(); // the session is no longer live
      if (event.code === 4403) state.banned = true; // refused for good: do not knock again
      if (state.ended || state.banned) { setConn("closed"); return; }
      retry();
    });
  }

  function retry(now) {
    // Exponential back-off with jitter: 0.5 s, 1 s, 2 s ... at most 15 s.
    const delay = now ? 0 : Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
    attempt += 1;
    setConn("reconnecting");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function send(msg) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(msg));
    return true;
  }

  // --- frames -----------------------------------------------------------------------------------
  function handle(msg) {
    switch (msg.t) {
      case "snapshot":
        track(msg);
        applyState(msg.s || {}); // every P0 key the room has; the server's render stands for the rest
        (msg.p || []).slice(-3).forEach((p) => showPurchase(p));
        applyCounters(msg.k || {});
        break;
      case "frame":
        track(msg);
        if (msg.s) applyState(msg.s);
        (msg.p || []).forEach((p) => showPurchase(p));
        if (msg.pn) showMore(msg.pn);
        (msg.c || []).forEach((c) => showComment(c));
        if (msg.k) applyCounters(msg.k);
        break;
      case "ack":
        commentAcked(msg.ref);
        break;
      case "error":
        if (msg.ref !== undefined && msg.ref !== null && pending.has(String(msg.ref))) {
          commentFailed(String(msg.ref), errorText(msg.code, msg.message));
        } else {
          flash(errorText(msg.code, msg.message));
        }
        break;
      case "bye":
        bye(msg.code, msg.message);
        break;
      case "card": // a returning customer, to the creator's connections only
        showCard(msg);
        break;
      case "costream_invite": // another creator invites this session, to the creator only
        showInvite(msg.costream || {});
        break;
      default:
        break; // "pong" and anything newer than this page
    }
  }

  function track(msg) {
    if (msg.e !== undefined) state.epoch = msg.e;
    if (msg.o !== undefined) state.offset = msg.o;
    // Where a reconnect would resume from, visible for support and for tests.
    if (state.epoch !== null && state.offset !== null) root.dataset.at = `${state.epoch}:${state.offset}`;
    if (typeof msg.ts === "number") state.skew = msg.ts - Date.now();
  }

  function bye(code, message) {
    if (code === "ended" || code === "not_live") {
      ended();
    } else if (code === "banned") {
      state.banned = true;
      flash(errorText(code, message), true);
      const form = $("[data-comment-form]");
      if (form) form.hidden = true;
    } else if (code === "too_slow") {
      retry(true); // catch up at once: the server will resume us or send a snapshot
    } else {
      flash(errorText(code, message));
    }
  }

  function ended() {
    state.ended = true;
    root.dataset.status = "ended";
    const box = $("[data-ended]");
    if (box) box.hidden = false;
    for (const sel of ["[data-comment-form]", "[data-buy-form]", "[data-like]"]) {
      const el = $(sel);
      if (el) el.hidden = true;
    }
    const video = $("[data-video]");
    if (video) video.pause();
    stopCountdown();
    if (socket) socket.close();
  }

  // --- P0 state ---------------------------------------------------------------------------------
  function applyState(s) {
    if ("viewers" in s) setText("[data-viewers]", s.viewers);
    if ("pin" in s) state.pin = s.pin || null;
    if ("sale" in s) state.sale = s.sale || null;
    if ("stock" in s) applyStock(s.stock);
    if ("pin" in s || "sale" in s || "stock" in s) renderCard();
    if (Array.isArray(s.deleted)) dropComments(s.deleted);
    if ("appraisal" in s) renderAppraisal(s.appraisal);
    if ("consignment" in s) renderConsignFee(s.consignment);
    if ("costream" in s) renderCostream(s.costream);
    if (s.ended) ended();
  }

  // An item appraised live (P0 "appraisal", docs/consignment.md): title, valuation, grade, notes.
  function renderAppraisal(a) {
    const box = $("[data-appraisal]");
    if (!box) return;
    box.hidden = !a;
    if (!a) return;
    box.querySelector("[data-appraisal-title]").textContent = String(a.title || "");
    box.querySelector("[data-appraisal-value]").textContent = money(a.valuation_fen);
    box.querySelector("[data-appraisal-grade]").textContent = String(a.grade || "");
    box.querySelector("[data-appraisal-notes]").textContent = String(a.notes || "");
  }

  // The creator's consignment fee waiver (P0 "consignment"): "0% consignment fee until ...".
  function renderConsignFee(t) {
    const el = $("[data-consign-fee]");
    if (!el) return;
    const until = t && t.waived_until_text;
    el.hidden = !until;
    el.textContent = until ? String(el.dataset.label || "").replace("{time}", String(until)) : "";
  }

  // Comments a moderator deleted leave every screen.
  function dropComments(ids) {
    if (!list) return;
    for (const id of ids) {
      const li = list.querySelector(`[data-comment="${Number(id)}"]`);
      if (li) li.remove();
    }
  }

  // "stock" carries stock left per SKU ({sku_id: n}) of what the room shows.
  function applyStock(stock) {
    if (!stock || typeof stock !== "object" || !state.pin) return;
    for (const sku of state.pin.skus || []) {
      if (String(sku.id) in stock) sku.stock = stock[String(sku.id)];
    }
  }

  function applyCounters(k) {
    if ("likes" in k) setText("[data-likes]", k.likes);
    if ("entries" in k) setText("[data-entries]", k.entries);
  }

  function setText(sel, value) {
    root.querySelectorAll(sel).forEach((el) => { el.textContent = String(value); });
  }

  // --- the pinned product card ------------------------------------------------------------------
  const card = $("[data-pin-card]");
  const list = $("[data-comments]");
  let countdownTimer = null;
  let buying = false;

  function money(fen) {
    const n = Number(fen) || 0;
    return `¥${Math.floor(n / 100).toLocaleString("en-US")}.${String(n % 100).padStart(2, "0")}`;
  }

  // P0 "sale" is the running flash sale or null (a sale's own record may say it ended).
  function running(sale) {
    return sale && (!sale.status || sale.status === "running") ? sale : null;
  }

  function selectedSku() {
    const pin = state.pin;
    if (!pin) return null;
    const input = card && card.querySelector("[data-sku-input]");
    const id = input ? Number(input.value) : NaN;
    return (pin.skus || []).find((s) => s.id === id) || null;
  }

  function renderCard() {
    if (!card) return;
    const pin = state.pin;
    card.hidden = !pin;
    root.classList.toggle("has-pin", Boolean(pin));
    if (!pin) { stopCountdown(); return; }
    const same = card.dataset.product === String(pin.product_id);
    card.dataset.product = String(pin.product_id);
    card.querySelectorAll("[data-pin-title]").forEach((el) => { el.textContent = pin.title; });
    card.querySelectorAll("[data-pin-link]").forEach((el) => {
      el.href = `/p/${pin.product_id}?source=live_room&creator=${root.dataset.creator}`;
    });
    const img = card.querySelector("[data-pin-image]");
    const noimg = card.querySelector("[data-pin-noimg]");
    if (img) {
      img.hidden = !pin.image_url;
      if (pin.image_url && img.getAttribute("src") !== pin.image_url) img.src = pin.image_url;
    }
    if (noimg) { noimg.hidden = Boolean(pin.image_url); noimg.textContent = (pin.title || "").slice(0, 1); }
    if (!same) fillSkus(pin);
    updateCard();
  }

  function fillSkus(pin) {
    const select = card.querySelector("select[data-sku-input]");
    const hidden = card.querySelector("input[data-sku-input]");
    const skus = pin.skus || [];
    const sale = running(state.sale);
    const chosen = sale ? sale.sku_id : (skus.find((s) => s.stock > 0) || skus[0] || {}).id;
    if (select) {
      select.replaceChildren(...skus.map((s) => {
        const option = document.createElement("option");
        option.value = String(s.id);
        option.textContent = (s.option_values || []).join(" / ") || pin.title;
        return option;
      }));
      if (chosen !== undefined) select.value = String(chosen);
      const choice = select.closest("[data-sku-choice]");
      if (choice) choice.hidden = skus.length < 2;
    } else if (hidden && chosen !== undefined) {
      hidden.value = String(chosen);
    }
  }

  function updateCard() {
    const pin = state.pin;
    if (!pin || !card) return;
    const sale = running(state.sale) && state.sale.product_id === pin.product_id ? state.sale : null;
    const sku = selectedSku();
    const price = sku ? money(sku.price_fen)
      : pin.min_price_fen === pin.max_price_fen ? money(pin.min_price_fen)
        : `${money(pin.min_price_fen)} – ${money(pin.max_price_fen)}`;
    setCard("[data-pin-price]", price);
    // Stock left: the flash sale's allocation while it runs on this SKU, else the SKU's stock.
    const onSale = sale && (!sku || sku.id === sale.sku_id);
    const left = onSale ? sale.left : sku ? sku.stock : (pin.skus || []).reduce((n, s) => n + (s.stock || 0), 0);
    const stockEl = card.querySelector("[data-stock]");
    if (stockEl) { stockEl.textContent = String(left); stockEl.dataset.value = String(left); }
    setCard("[data-stock-label]", onSale ? say("sale_left") : say("stock_left"));
    const saleBox = card.querySelector("[data-sale]");
    if (saleBox) saleBox.hidden = !sale;
    card.classList.toggle("on-sale", Boolean(sale));
    if (sale) {
      setCard("[data-sale-limit]", say("limit", { n: sale.limit }));
      setCard("[data-sale-allocation]", String(sale.allocation));
      startCountdown(typeof sale.ends_ms === "number" ? sale.ends_ms : Date.parse(sale.ends_at));
    } else {
      stopCountdown();
    }
    const soldOut = left <= 0;
    card.classList.toggle("sold-out", soldOut);
    const button = card.querySelector("[data-buy]");
    if (button && button.tagName === "BUTTON") {
      button.disabled = soldOut || buying;
      button.textContent = soldOut ? say("sold_out") : say(sale ? "grab" : "buy");
    }
    const qty = card.querySelector("input[name=quantity]");
    if (qty && sale) qty.max = String(sale.limit);
  }

  function setCard(sel, text) {
    card.querySelectorAll(sel).forEach((el) => { el.textContent = text; });
  }

  function startCountdown(endsAt) {
    const el = card && card.querySelector("[data-countdown]");
    if (!el || Number.isNaN(endsAt)) return;
    const tick = () => {
      const ms = endsAt - (Date.now() + state.skew);
      const s = Math.max(0, Math.ceil(ms / 1000));
      const mm = String(Math.floor(s / 60)).padStart(2, "0");
      el.textContent = `${mm}:${String(s % 60).padStart(2, "0")}`;
      el.dataset.seconds = String(s);
      if (s <= 0) stopCountdown();
    };
    stopCountdown();
    tick();
    countdownTimer = setInterval(tick, 250);
  }

  function stopCountdown() {
    clearInterval(countdownTimer);
    countdownTimer = null;
  }

  // --- buying from the card: the room's JSON order route, one idempotency key per attempt --------
  const buyForm = $("[data-buy-form]");
  if (buyForm) {
    buyForm.addEventListener("change", (event) => {
      if (event.target.matches("[data-sku-input]")) updateCard();
    });
    buyForm.addEventListener("submit", async (event) => {
      const address = buyForm.querySelector("[name=address_id]");
      if (!address || !address.value || !window.fetch) return; // the form route handles it
      event.preventDefault();
      if (buying) return;
      const key = buyForm.querySelector("[name=idempotency_key]");
      const body = {
        sku_id: Number(buyForm.querySelector("[data-sku-input]").value),
        quantity: Number((buyForm.querySelector("[name=quantity]") || { value: 1 }).value),
        address_id: Number(address.value),
      };
      buying = true;
      buyStatus("", "");
      updateCard();
      try {
        const response = await fetch(buyForm.dataset.api, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "Idempotency-Key": key.value,
            "X-CSRF-Token": csrf,
          },
          body: JSON.stringify(body),
        });
        const data = await response.json().catch(() => ({}));
        if (response.ok) {
          key.value = newKey(); // the next purchase is a new order
          const orderId = (data.order_ids || [])[0];
          buyStatus(say("bought"), orderId ? `/orders/${orderId}` : "/orders", "ok");
          if (data.sale) { state.sale = data.sale; updateCard(); }
        } else if (response.status === 401) {
          location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
        } else {
          const err = data.error || {};
          if (response.status < 500) key.value = newKey(); // refused: nothing was placed
          buyStatus(errorText(err.code, err.message), "", "error", err.code);
        }
      } catch {
        // Lost connection: the same key again is safe (a replay answers the first order).
        buyStatus(say("not_sent"), "", "error");
      } finally {
        buying = false;
        updateCard();
      }
    });
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  function buyStatus(text, href, kind, code) {
    const el = card && card.querySelector("[data-buy-status]");
    if (!el) return;
    el.hidden = !text;
    el.dataset.kind = kind || "";
    el.dataset.code = code || "";
    el.replaceChildren();
    if (!text) return;
    const span = document.createElement("span");
    span.textContent = text;
    el.append(span);
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.textContent = ` ${say("pay_now")} ›`;
      el.append(link);
    }
  }

  // --- comments ---------------------------------------------------------------------------------
  const MAX_LINES = console_ ? 300 : 60;

  function showComment(c) {
    if (!list) return;
    const li = document.createElement("li");
    li.className = "live-comment";
    li.dataset.comment = String(c.id);
    li.dataset.user = String(c.uid);
    if (c.badge) {
      const badge = document.createElement("span");
      badge.className = `live-badge live-badge-${c.badge === "creator" ? "creator" : "moderator"}`;
      badge.textContent = say(c.badge === "creator" ? "badge_creator" : "badge_moderator");
      li.append(badge);
    }
    const name = document.createElement("b");
    name.className = "live-name";
    name.textContent = c.u;
    const text = document.createElement("span");
    text.className = "live-text";
    text.textContent = c.x;
    li.append(name, text);
    if (console_) li.append(moderationTools(c));
    list.append(li);
    while (list.children.length > MAX_LINES) list.firstElementChild.remove();
    if (!console_ || nearBottom()) list.scrollTop = list.scrollHeight;
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  // The console's tools on a comment: the same page routes as the forms rendered by the server.
  function moderationTools(c) {
    const tools = document.createElement("span");
    tools.className = "live-tools";
    const base = root.dataset.consoleBase;
    const items = [[`${base}/comments/${c.id}/delete`, say("delete"), {}]];
    if (String(c.uid) !== root.dataset.creator) {
      items.push([`${base}/mutes`, say("mute"), { user_id: c.uid, minutes: 10 }]);
      items.push([`${base}/bans`, say("ban"), { user_id: c.uid }]);
    }
    for (const [action, label, fields] of items) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = action;
      form.className = "inline";
      for (const [name, value] of Object.entries({ _csrf_token: csrf, ...fields })) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = String(value);
        form.append(input);
      }
      const button = document.createElement("button");
      button.type = "submit";
      button.className = "link";
      button.textContent = label;
      form.append(button);
      tools.append(form);
    }
    return tools;
  }

  function showPurchase(p) {
    const box = $("[data-purchases]");
    if (!box) return;
    const li = document.createElement("li");
    li.className = "live-purchase";
    li.textContent = say("just_bought", { name: p.u, title: p.title, q: p.q });
    box.append(li);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => li.remove(), 6000);
  }

  function showMore(n) {
    const box = $("[data-purchases]");
    if (!box) return;
    const li = document.createElement("li");
    li.className = "live-purchase";
    li.textContent = say("more_bought", { n });
    box.append(li);
    setTimeout(() => li.remove(), 6000);
  }

  const commentForm = $("[data-comment-form]");
  if (commentForm) {
    commentForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = commentForm.querySelector("[name=text]");
      const text = input.value.trim();
      if (!text) return;
      const ref = `c${++refSeq}`;
      if (!send({ t: "comment", x: text, ref })) {
        commentStatus(say("not_sent"));
        return;
      }
      pending.set(ref, text);
      commentStatus("");
      input.disabled = true;
    });
  }

  function commentAcked(ref) {
    if (!pending.delete(String(ref)) || !commentForm) return;
    const input = commentForm.querySelector("[name=text]");
    input.value = "";
    input.disabled = false;
    input.focus();
  }

  function commentFailed(ref, message) {
    if (!pending.delete(ref) || !commentForm) return;
    const input = commentForm.querySelector("[name=text]");
    input.disabled = false;
    commentStatus(message);
  }

  function commentStatus(message) {
    const el = commentForm && commentForm.querySelector("[data-comment-status]");
    if (!el) return;
    el.textContent = message;
    el.hidden = !message;
  }

  // --- likes: taps are added up and sent at most every 300 ms (at most 10 at a time) -------------
  let likes = 0;
  let likeTimer = null;
  const likeButton = $("[data-like]");
  if (likeButton) {
    likeButton.addEventListener("click", () => {
      likes += 1;
      likeButton.classList.remove("pop");
      void likeButton.offsetWidth; // restart the animation
      likeButton.classList.add("pop");
      if (!likeTimer) likeTimer = setTimeout(flushLikes, 300);
    });
  }

  function flushLikes() {
    clearTimeout(likeTimer);
    likeTimer = null;
    while (likes > 0) {
      const n = Math.min(10, likes);
      if (!send({ t: "like", n })) return;
      likes -= n;
    }
  }

  // --- co-streaming: the partner's pinned product, bought from this room (P0 "costream") --------
  const coBox = $("[data-costream]");
  let coPin = null;

  function renderCostream(c) {
    if (!coBox) return;
    coBox.hidden = !c;
    if (!c) return;
    const partner = c.partner || {};
    coBox.querySelector("[data-costream-title]").textContent = say("costream_with", { name: partner.name || "" });
    coPin = partner.pin || null;
    const box = coBox.querySelector("[data-costream-pin]");
    box.hidden = !coPin;
    if (!coPin) return;
    box.querySelector("[data-costream-product]").textContent = String(coPin.title || "");
    box.querySelector("[data-costream-price]").textContent = money(coPin.min_price_fen);
    const select = box.querySelector("[data-costream-sku]");
    if (!select) return;
    const sale = running(partner.sale);
    select.replaceChildren();
    for (const sku of coPin.skus || []) {
      const left = sale && sale.sku_id === sku.id ? Math.min(sku.stock, sale.left) : sku.stock;
      const option = document.createElement("option");
      option.value = String(sku.id);
      option.disabled = left <= 0;
      option.textContent = `${(sku.option_values || []).join(" / ") || coPin.title} · ${money(sku.price_fen)} · ${say("stock_left")} ${left}`;
      select.append(option);
    }
  }

  if (coBox) {
    const button = coBox.querySelector("[data-costream-buy]");
    const status = coBox.querySelector("[data-costream-status]");
    const tell = (text) => { if (status) { status.textContent = text; status.hidden = !text; } };
    if (button) button.addEventListener("click", async () => {
      const select = coBox.querySelector("[data-costream-sku]");
      const address = root.querySelector("[data-buy-form] [name=address_id]");
      if (!select || !select.value) return;
      if (!address || !address.value) { location.href = "/me/addresses"; return; }
      button.disabled = true;
      try {
        const response = await fetch(coBox.dataset.buyApi, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": newKey(), "X-CSRF-Token": csrf },
          body: JSON.stringify({ sku_id: Number(select.value), quantity: 1, address_id: Number(address.value) }),
        });
        const data = await response.json().catch(() => ({}));
        const err = data.error || {};
        tell(response.ok ? say("bought") : errorText(err.code, err.message));
      } catch {
        tell(say("not_sent"));
      } finally {
        button.disabled = false;
      }
    });
  }

  // An invitation to co-stream, pushed to this creator's console: accept or decline in place.
  function showInvite(c) {
    const box = $("[data-costream-invites]");
    if (!box || !c.id) return;
    const from = c.inviter || {};
    const p = document.createElement("p");
    p.textContent = say("costream_invite", { name: from.creator_name || "", pct: (Number(c.share_bp) || 0) / 100 });
    box.append(p);
    for (const verb of ["accept", "decline"]) {
      const form = document.createElement("form");
      form.method = "post";
      form.className = "inline";
      form.action = `${root.dataset.consoleBase}/costream/${Number(c.id)}/${verb}`;
      const token = document.createElement("input");
      token.type = "hidden";
      token.name = "_csrf_token";
      token.value = csrf;
      const go = document.createElement("button");
      go.type = "submit";
      go.className = verb === "accept" ? "button primary" : "button";
      go.textContent = labels[`costream_${verb}`] || verb;
      form.append(token, go);
      box.append(form);
    }
    flash(p.textContent, true);
  }

  // --- returning customers: the creator's cards (textContent only) -----------------------------
  function showCard(c) {
    const cards = $("[data-cards]");
    if (!cards) return;
    const id = Number(c.user_id);
    const old = cards.querySelector(`[data-card="${id}"]`);
    if (old) old.remove();
    const li = document.createElement("li");
    li.className = "live-card";
    li.dataset.card = String(id);
    const line = (tag, text, cls) => {
      const el = document.createElement(tag);
      el.textContent = text;
      if (cls) el.className = cls;
      li.append(el);
      return el;
    };
    line("strong", `${c.name || ""} #${id}`);
    line("p", say("card_orders", { n: Number(c.orders) || 0, spent: money(c.spent_fen) }));
    line("p", c.last_visit ? say("card_last_visit", { time: new Date(c.last_visit).toLocaleString() }) : say("card_first_visit"), "muted");
    if ((c.options || []).length) line("p", say("card_bought", { options: c.options.join(", ") }));
    const recent = document.createElement("ul");
    for (const r of c.recent || []) {
      const item = document.createElement("li");
      const opts = (r.options || []).join(" / ");
      item.textContent = `${new Date(r.at).toLocaleDateString()} · ${r.title}${opts ? ` (${opts})` : ""} ×${r.quantity} · ${money(r.spent_fen)}`;
      recent.append(item);
    }
    li.append(recent);
    const notes = document.createElement("textarea");
    notes.rows = 2;
    notes.maxLength = 1000;
    notes.value = String(c.note || "");
    notes.setAttribute("aria-label", say("card_notes"));
    notes.placeholder = say("card_notes");
    li.append(notes);
    const save = document.createElement("button");
    save.type = "button";
    save.className = "button small";
    save.textContent = say("card_save");
    save.addEventListener("click", async () => {
      save.disabled = true;
      try {
        const response = await fetch(`/api/v1/live/customers/${id}/notes`, {
          method: "PUT",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ note: notes.value }),
        });
        save.textContent = response.ok ? say("card_saved") : say("error");
      } catch {
        save.textContent = say("not_sent");
      } finally {
        save.disabled = false;
        setTimeout(() => { save.textContent = say("card_save"); }, 2000);
      }
    });
    li.append(save);
    cards.prepend(li);
  }

  // --- messages ---------------------------------------------------------------------------------
  function errorText(code, message) {
    return labels[`error_${code}`] || message || say("error");
  }

  function flash(message, sticky) {
    const el = $("[data-flash]");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(el._timer);
    if (!sticky) el._timer = setTimeout(() => { el.hidden = true; }, 5000);
  }

  // --- the video: transport is the media server's; a page without it still works -----------------
  const video = $("[data-video]");
  if (video) {
    video.addEventListener("error", () => {
      const fallback = $("[data-video-off]");
      if (fallback) fallback.hidden = false;
    });
  }

  // --- the creator's console keeps the session alive (the sweeper ends a silent one) -------------
  if (root.dataset.heartbeat) {
    setInterval(() => {
      if (state.ended) return;
      fetch(root.dataset.heartbeat, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      }).then((response) => { if (response.status === 409) ended(); }).catch(() => {});
    }, 60000);
  }

  renderCard();
  if (coBox) renderCostream(readJSON("[data-initial-costream]"));
  if (root.dataset.status === "live") connect();
  else if (state.ended) ended();
  document.addEventListener("visibilitychange", () => {
    // Back from the background with the socket gone: reconnect now rather than at the back-off.
    if (!document.hidden && !socket && !state.ended && !state.banned && root.dataset.status === "live") retry(true);
  });
}
