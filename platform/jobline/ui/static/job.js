// A job's page: the fields and the timeline follow the job's own stream, which starts
// after the last event the page shows and, on a reconnect, after the last one received
// (Last-Event-ID): an event is drawn once, whatever the connection does.
"use strict";
(() => {
  const J = window.jobline;
  const page = document.querySelector("[data-job-page]");
  if (!page) return;
  const jobId = page.dataset.jobId;
  const timeline = page.querySelector("[data-timeline]");
  const earlier = page.querySelector('[data-action="earlier"]');
  const actions = page.querySelector("[data-actions]");
  const answer = page.querySelector('[data-field="action-result"]');
  const status = page.querySelector("[data-live-status]");
  const field = (name) => page.querySelector(`[data-field="${name}"]`);
  // Entries kept on the page (JOBLINE_UI_TIMELINE_MAX); older ones go, and come back a
  // page (JOBLINE_UI_TIMELINE_PAGE) at a time with "Show earlier events".
  const MAX_ENTRIES = Number(page.dataset.maxEntries) || 500;
  const PAGE = Math.min(100, Number(page.dataset.page) || 100);
  let firstSeq = Number(page.dataset.firstSeq);
  let lastSeq = Number(page.dataset.lastSeq);
  let state = page.dataset.state;
  let started = (field("started") || {}).dateTime || "";
  let source = null;
  let queue = [];
  let scheduled = false;

  function lastEntry() {
    const items = timeline.querySelectorAll("li[data-seq]");
    return items.length ? items[items.length - 1] : null;
  }

  function entry(e, previousAt) {
    const li = document.createElement("li");
    li.dataset.seq = String(e.seq);
    li.dataset.type = e.type;
    li.dataset.attempt = String(e.attempt);
    li.dataset.at = e.at;
    const seq = document.createElement("span");
    seq.className = "seq";
    seq.textContent = `#${e.seq}`;
    const type = document.createElement("span");
    type.className = `etype etype-${e.type}`;
    type.textContent = e.type;
    const time = document.createElement("time");
    J.setTime(time, e.at, true);
    const gap = document.createElement("span");
    gap.className = "gap";
    gap.dataset.field = "gap";
    if (previousAt) gap.textContent = `+${J.formatSeconds(Math.max(0, (new Date(e.at) - new Date(previousAt)) / 1000))}`;
    const data = document.createElement("pre");
    data.className = "data";
    data.textContent = JSON.stringify(e.data);
    li.append(seq, type, time, gap, data);
    return li;
  }

  function section(attempt) {
    const s = document.createElement("section");
    s.className = "attempt";
    s.dataset.attempt = String(attempt);
    const h = document.createElement("h3");
    h.textContent = `Attempt ${attempt}`;
    s.append(h, document.createElement("ol"));
    return s;
  }

  function append(e) {
    const previous = lastEntry();
    let group = timeline.lastElementChild;
    if (!group || group.dataset.attempt !== String(e.attempt)) {
      group = section(e.attempt);
      timeline.append(group);
    }
    group.querySelector("ol").append(entry(e, previous ? previous.dataset.at : null));
    trim();
  }

  function prepend(events) {
    // `events` oldest first, all before the page's first entry.
    let next = timeline.querySelector("li[data-seq]");
    for (let i = events.length - 1; i >= 0; i -= 1) {
      const e = events[i];
      let group = timeline.firstElementChild;
      if (!group || group.dataset.attempt !== String(e.attempt)) {
        group = section(e.attempt);
        timeline.prepend(group);
      }
      const li = entry(e, i > 0 ? events[i - 1].at : null);
      group.querySelector("ol").prepend(li);
      if (next) {
        next.querySelector('[data-field="gap"]').textContent =
          `+${J.formatSeconds(Math.max(0, (new Date(next.dataset.at) - new Date(e.at)) / 1000))}`;
      }
      next = li;
    }
  }

  function trim() {
    const items = timeline.querySelectorAll("li[data-seq]");
    let extra = items.length - MAX_ENTRIES;
    for (let i = 0; extra > 0; i += 1, extra -= 1) {
      const ol = items[i].parentElement;
      items[i].remove();
      if (!ol.children.length) ol.parentElement.remove();
    }
    const first = timeline.querySelector("li[data-seq]");
    firstSeq = first ? Number(first.dataset.seq) : lastSeq;
    earlier.hidden = firstSeq <= 1;
  }

  function button(action, label) {
    let b = actions.querySelector(`button[data-action="${action}"]`);
    if (!b) {
      b = document.createElement("button");
      b.type = "button";
      b.dataset.action = action;
      b.textContent = label;
      b.addEventListener("click", () => act(action));
      actions.insertBefore(b, answer);
    }
    return b;
  }

  function showButtons() {
    const cancel = !J.FINAL.has(state);
    const retry = state === "failed" || state === "cancelled";
    if (cancel) button("cancel", "Cancel job"); else actions.querySelector('button[data-action="cancel"]')?.remove();
    if (retry) button("retry", "Retry job"); else actions.querySelector('button[data-action="retry"]')?.remove();
  }

  function show(c) {
    if (c.state) {
      state = c.state;
      page.dataset.state = state;
      J.setState(field("state"), state);
    }
    if (c.progress !== undefined) {
      field("progress").value = c.progress;
      field("progress-text").textContent = `${c.progress}%`;
    }
    if (c.message !== undefined) field("message").textContent = c.message;
    if (c.attempt !== undefined) field("attempt").textContent = c.attempt;
    if (c.cancelRequested !== undefined) field("cancel-requested").hidden = !c.cancelRequested;
    if (c.started !== undefined) {
      started = c.started;
      J.setTime(field("started"), c.started, true);
    }
    if (c.finished !== undefined) {
      J.setTime(field("finished"), c.finished, true);
      field("duration").textContent = c.finished && started
        ? J.formatSeconds(Math.max(0, (new Date(c.finished) - new Date(started)) / 1000)) : "";
    }
    if (c.result !== undefined) field("result").textContent = c.result === null ? "" : JSON.stringify(c.result, null, 2);
    if (c.error !== undefined) field("error").textContent = J.errorText(c.error);
  }

  function flush() {
    scheduled = false;
    const batch = queue;
    queue = [];
    for (const e of batch) {
      if (e.seq <= lastSeq) continue; // already on the page
      lastSeq = e.seq;
      append(e);
      show(J.changesOf(e));
    }
    showButtons();
    if (J.FINAL.has(state)) close("finished");
  }

  function onEvent(message) {
    queue.push(JSON.parse(message.data));
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  function open() {
    if (source) return;
    source = new EventSource(`/ui/jobs/${jobId}/stream?after=${lastSeq}`);
    source.addEventListener("open", () => {
      page.dataset.live = "open";
      J.setLive(status, "live");
    });
    source.addEventListener("error", () => {
      if (!source) return;
      const closed = source.readyState === EventSource.CLOSED;
      page.dataset.live = closed ? "closed" : "reconnecting";
      J.setLive(status, closed ? "not live: reload the page" : "reconnecting…");
      if (closed) source = null;
    });
    for (const type of J.EVENT_TYPES) source.addEventListener(type, onEvent);
  }

  function close(text) {
    if (source) source.close();
    source = null;
    page.dataset.live = "closed";
    J.setLive(status, text);
  }

  async function act(action) {
    const b = actions.querySelector(`button[data-action="${action}"]`);
    if (b) b.disabled = true;
    answer.removeAttribute("data-error");
    answer.textContent = "";
    let response;
    try {
      response = await fetch(`/api/v1/jobs/${jobId}/${action}`, {
        method: "POST",
        headers: { Accept: "application/json" },
      });
    } catch (_) {
      answer.setAttribute("data-error", "");
      answer.textContent = "The server did not answer; try again.";
      if (b) b.disabled = false;
      return;
    }
    const body = await J.readJson(response);
    if (b) b.disabled = false;
    if (response.ok && body) {
      answer.textContent = `${response.status}: ${action === "cancel" ? "cancel" : "retry"} accepted; the job is ${body.state}${action === "cancel" && body.state === "running" ? " (asked to stop)" : ""}.`;
      // The stream brings the events; a retried job has a new attempt to follow. A fast
      // job may have finished before this answer came (its state final already): the page
      // still lacks the events past its own last one, and the stream brings those too.
      if (!J.FINAL.has(body.state) || body.last_seq > lastSeq) open();
    } else {
      answer.setAttribute("data-error", "");
      answer.textContent = J.problemText(response.status, body);
      // The job moved on without this page (a 409): catch up with what happened since.
      if (response.status === 409) open();
    }
  }

  async function loadEarlier() {
    if (firstSeq <= 1) return;
    earlier.disabled = true;
    const size = Math.min(PAGE, firstSeq - 1);
    const after = Math.max(0, firstSeq - 1 - size);
    const response = await fetch(`/api/v1/jobs/${jobId}/events?after_seq=${after}&size=${size}`, {
      headers: { Accept: "application/json" },
    }).catch(() => null);
    earlier.disabled = false;
    if (!response || !response.ok) {
      answer.setAttribute("data-error", "");
      answer.textContent = response ? J.problemText(response.status, await J.readJson(response)) : "The server did not answer.";
      return;
    }
    const body = await response.json();
    const events = body.items.filter((e) => e.seq < firstSeq);
    prepend(events);
    if (events.length) firstSeq = events[0].seq;
    earlier.hidden = firstSeq <= 1;
  }

  for (const action of ["cancel", "retry"]) {
    const b = actions.querySelector(`button[data-action="${action}"]`);
    if (b) b.addEventListener("click", () => act(action));
  }
  earlier.addEventListener("click", loadEarlier);
  window.addEventListener("pagehide", () => close("closed"));
  if (!J.FINAL.has(state)) open();
  else page.dataset.live = "closed";
})();
