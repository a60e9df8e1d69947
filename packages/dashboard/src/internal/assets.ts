/**
 * The dashboard's only stylesheet and script, served from its own routes
 * (`assets/app.css`, `assets/app.js`) so the pages need no CDN and the
 * Content-Security-Policy allows no inline script at all.
 *
 * The script: on a page whose `<main>` has `data-refresh`, it fetches the
 * same URL every that many seconds and swaps in the new page's `<main>`,
 * while the tab is visible and the reader is not busy with the page (focus
 * inside it, text selected, a `<details>` open), unless paused with the
 * header's button; the header says when it last updated, or why not. A
 * hidden tab costs the database nothing. It also drops a shown notice from
 * the address, so that a refresh does not repeat it.
 */

/** The stylesheet. */
export const css = `
:root { --fg: #1d232b; --muted: #5d6875; --line: #d9dee4; --bg: #f6f7f9; --card: #fff; --accent: #2557c7;
  --done: #2f8f46; --failed: #c8372d; --retried: #d08a18; --ready: #2557c7; --running: #7a3fc2; --cancelled: #6b7280; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 20px; background: #1d232b; color: #fff; }
header .brand { font-weight: 600; font-size: 16px; }
header nav a { color: #cfd6df; text-decoration: none; margin-right: 16px; }
header nav a.current, header nav a:hover { color: #fff; }
header .mode { margin-left: auto; font-size: 12px; color: #cfd6df; }
header .live { font-size: 12px; color: #cfd6df; display: flex; gap: 8px; align-items: center; }
header .live button { font-size: 12px; padding: 1px 8px; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 4px 0 14px; }
h2 { font-size: 15px; margin: 22px 0 8px; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--card); border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 480px; white-space: pre-wrap; word-break: break-word; }
.state { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; color: #fff; }
.state-ready { background: var(--ready); } .state-running { background: var(--running); } .state-done { background: var(--done); }
.state-failed { background: var(--failed); } .state-cancelled { background: var(--cancelled); }
.paused { color: var(--failed); font-weight: 600; }
.muted { color: var(--muted); }
.notice { background: #e8f3ea; border: 1px solid #b8dcc0; padding: 8px 12px; margin-bottom: 14px; }
.problem { background: #fbeaea; border: 1px solid #efc2bf; padding: 8px 12px; margin-bottom: 14px; }
form.inline { display: inline; margin: 0; }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; margin-bottom: 12px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
button { cursor: pointer; background: #eef2f7; }
button.danger { background: #fbeaea; border-color: #efc2bf; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
.actions { display: flex; gap: 8px; flex-wrap: wrap; margin: 10px 0; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
.card { background: var(--card); border: 1px solid var(--line); padding: 10px 14px; min-width: 130px; }
.card .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { font-size: 12px; color: var(--muted); }
.chart { background: var(--card); border: 1px solid var(--line); padding: 8px; }
.chart svg { display: block; width: 100%; height: 160px; }
.legend span { margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.legend i.done { background: var(--done); } .legend i.retried { background: var(--retried); } .legend i.failed { background: var(--failed); }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: var(--card); border: 1px solid var(--line); padding: 10px 14px; margin: 0; }
dl.fields dt { color: var(--muted); } dl.fields dd { margin: 0; word-break: break-all; }
ol.timeline { background: var(--card); border: 1px solid var(--line); margin: 0; padding: 10px 14px 10px 34px; }
.pager { margin-top: 10px; }
`

/** The script: live refresh of `<main data-refresh>`. */
export const js = `
(function () {
  // A notice (e.g. "Retried 1 task") is shown once: later refreshes and reloads fetch the page without it.
  var url = new URL(location.href);
  if (url.searchParams.has("notice")) {
    url.searchParams.delete("notice");
    url.searchParams.delete("n");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  var main = document.querySelector("main[data-refresh]");
  if (!main) return;
  var seconds = Number(main.getAttribute("data-refresh"));
  if (!(seconds > 0)) return;
  var toggle = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  var paused = false;
  var busy = false;
  function clock() { return new Date().toISOString().slice(11, 19) + " UTC"; }
  function say(text) { if (status) status.textContent = text; }
  // Not while the reader is busy with the page: focus inside it, a selection, an open details.
  function reading() {
    var current = document.querySelector("main");
    var el = document.activeElement;
    if (el && el !== document.body && current && current.contains(el)) return true;
    var selection = window.getSelection();
    if (selection && String(selection).length > 0) return true;
    return !!(current && current.querySelector("details[open]"));
  }
  function refresh() {
    if (paused || busy || document.visibilityState !== "visible" || reading()) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { say("not updated: HTTP " + response.status + " at " + clock()); return null; }
        return response.text();
      })
      .then(function (text) {
        if (text === null) return;
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var current = document.querySelector("main");
        if (next && current) { current.replaceWith(next); say("updated " + clock()); }
      })
      .catch(function () { say("not updated: no answer at " + clock()); })
      .then(function () { busy = false; });
  }
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume updates" : "Pause updates";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      say(paused ? "updates paused" : "updates on");
      if (!paused) refresh();
    });
  }
  say("updates every " + seconds + " s");
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", refresh);
})();
`
