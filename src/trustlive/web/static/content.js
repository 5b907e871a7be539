/* Short videos: a video that cannot be played (an address that does not answer, a format the
   browser lacks) shows its cover and a short note instead of a broken player. */

const NO_SOURCE = 3; // HTMLMediaElement.NETWORK_NO_SOURCE: every source failed

function fallBack(video) {
  const stage = video.closest("[data-video-stage]");
  const cover = stage && stage.querySelector("[data-video-fallback]");
  if (!cover || !cover.hidden) return;
  video.pause();
  video.hidden = true;
  cover.hidden = false;
}

document.querySelectorAll("video[data-video]").forEach((video) => {
  video.addEventListener("error", () => fallBack(video));
  video.querySelectorAll("source").forEach((source) => source.addEventListener("error", () => fallBack(video)));
  // It may have failed before this script ran.
  if (video.error || (video.networkState === NO_SOURCE && video.readyState === 0)) fallBack(video);
});
