// The jobs list follows one stream (the per-user one) and applies its events to the rows
// once per animation frame: a burst of events for one job costs one DOM update.
"use strict";
(() => {
  const J = window.jobline;
  const table = document.querySelector("[data-live-list]");
  if (!table) return;
  const tbody = table.querySelector("[data-rows]");
  const template = document.querySelector("template[data-row-template]");
  const status = document.querySelector("[data-live-status]");
  const empty = document.querySelector("[data-empty]");
  const newer = document.querySelector("[data-newer-notice]");
  const opts = table.dataset;
  const maxRows = Number(opts.maxRows) || 1000;
  const rows = new Map();
  for (const tr of tbody.children) rows.set(tr.dataset.jobId, tr);

  // job id -> the changes of its events not yet drawn, merged (the newest wins per field).
  const pending = new Map();
  let scheduled = false;

  function onEvent(message) {
    const e = JSON.parse(message.data);
    let merged = pending.get(e.job_id);
    if (!merged) {
      merged = { seq: 0 };
      pending.set(e.job_id, merged);
    }
    if (e.seq <= merged.seq) return;
    Object.assign(merged, J.changesOf(e));
    if (e.type === "submitted") merged.submitted = e;
    schedule();
  }

  function matches(submitted, state) {
    const data = submitted.data || {};
    if (opts.filterType && data.type !== opts.filterType) return false;
    if (opts.filterQueue && data.queue !== opts.filterQueue) return false;
    if (opts.filterState && state !== opts.filterState) return false;
    return true;
  }

  function newRow(jobId, submitted) {
    const tr = template.content.firstElementChild.cloneNode(true);
    const data = submitted.data || {};
    tr.dataset.jobId = jobId;
    tr.dataset.lastSeq = "0";
    tr.dataset.created = submitted.at;
    const link = tr.querySelector('[data-field="link"]');
    link.href = `/ui/jobs/${jobId}`;
    link.textContent = jobId.slice(0, 8);
    tr.querySelector('[data-field="type"]').textContent = data.type || "";
    tr.querySelector('[data-field="queue"]').textContent = data.queue || "";
    J.setTime(tr.querySelector('[data-field="created"]'), submitted.at);
    const owner = tr.querySelector('[data-field="owner"]');
    if (owner) owner.textContent = data.owner_id || "";
    return tr;
  }

  function apply(tr, c) {
    if (c.seq <= Number(tr.dataset.lastSeq)) return;
    tr.dataset.lastSeq = String(c.seq);
    if (c.state) J.setState(tr.querySelector('[data-field="state"]'), c.state);
    if (c.progress !== undefined) {
      tr.querySelector('[data-field="progress"]').value = c.progress;
      tr.querySelector('[data-field="progress-text"]').textContent = `${c.progress}%`;
    }
    if (c.attempt !== undefined) tr.querySelector('[data-field="attempt"]').textContent = c.attempt;
    if (c.started !== undefined) tr.dataset.started = c.started;
    if (c.finished !== undefined) {
      J.setTime(tr.querySelector('[data-field="finished"]'), c.finished);
      const begun = tr.dataset.started || tr.dataset.created;
      tr.querySelector('[data-field="duration"]').textContent =
        c.finished && begun ? J.formatSeconds(Math.max(0, (new Date(c.finished) - new Date(begun)) / 1000)) : "";
    }
  }

  let unshown = 0;
  let noticing = false;
  const NOTICE_MS = 1000;
  function notice() {
    noticing = false;
    newer.hidden = false;
    newer.querySelector("a").textContent = `${unshown} newer job(s) not shown: reload`;
  }
  // New rows go in together at most every INSERT_MS: putting a row at the top of a long
  // list costs a layout of the list, once per insertion however many rows it brings.
  const INSERT_MS = 250;
  let lastInsert = -INSERT_MS;
  let insertTimer = null;

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  function flush() {
    scheduled = false;
    const now = performance.now();
    const mayInsert = now - lastInsert >= INSERT_MS;
    const fresh = document.createDocumentFragment();
    for (const [jobId, c] of pending) {
      let tr = rows.get(jobId);
      if (!tr && c.submitted && opts.liveNew && matches(c.submitted, c.state)) {
        if (rows.size < maxRows) {
          if (!mayInsert) continue; // stays pending until the next insertion
          tr = newRow(jobId, c.submitted);
          fresh.prepend(tr); // events come oldest first; the newest row goes on top
          rows.set(jobId, tr);
        } else if (newer) {
          unshown += 1;
          if (!noticing) {
            // Once a second: a new line of text re-lays out the page (bench/ui.py flood --fresh).
            noticing = true;
            setTimeout(notice, NOTICE_MS);
          }
        }
      }
      if (tr) apply(tr, c);
      pending.delete(jobId);
    }
    if (fresh.firstChild) {
      tbody.prepend(fresh);
      lastInsert = now;
      if (empty) empty.hidden = true;
    }
    if (pending.size && !insertTimer) {
      insertTimer = setTimeout(() => {
        insertTimer = null;
        schedule();
      }, INSERT_MS);
    }
  }

  const start = opts.start && opts.start !== "0" ? `?after=${encodeURIComponent(opts.start)}` : "";
  const source = new EventSource(`/ui/stream${start}`);
  source.addEventListener("open", () => {
    document.body.dataset.live = "open";
    J.setLive(status, "live");
  });
  source.addEventListener("error", () => {
    document.body.dataset.live = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
    J.setLive(status, source.readyState === EventSource.CLOSED ? "not live: reload the page" : "reconnecting…");
  });
  for (const type of J.EVENT_TYPES) source.addEventListener(type, onEvent);
  window.addEventListener("pagehide", () => source.close());
})();
