// Shared by every page: log out, times, and how an event moves a job (the API's projection).
"use strict";
(() => {
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  // The state an event leads to (jobs/states.py); cancel_requested leaves it as it is.
  const STATE_AFTER = {
    submitted: "pending", queued: "queued", started: "running", progress: "running",
    retrying: "retrying", succeeded: "succeeded", failed: "failed", cancelled: "cancelled",
    worker_lost: "queued", requeued: "queued",
  };
  const ATTEMPT_ENDING = new Set(["retrying", "worker_lost"]);
  const EVENT_TYPES = [
    "submitted", "queued", "started", "progress", "retrying", "succeeded", "failed",
    "cancel_requested", "cancelled", "worker_lost", "requeued",
  ];

  const pad = (n, w = 2) => String(n).padStart(w, "0");
  function formatTime(iso, ms) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    return ms ? `${text}.${pad(d.getUTCMilliseconds(), 3)}` : text;
  }
  function formatSeconds(s) {
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }
  function setTime(el, iso, ms) {
    if (!el) return;
    el.dateTime = iso || "";
    el.textContent = formatTime(iso, ms);
  }
  function setState(el, state) {
    if (!el || !state) return;
    el.textContent = state;
    el.className = `state state-${state}`;
  }
  // What one event changes of a job: {state, attempt, progress, message, ...}.
  function changesOf(e) {
    const c = { seq: e.seq, at: e.at };
    if (STATE_AFTER[e.type]) c.state = STATE_AFTER[e.type];
    c.attempt = ATTEMPT_ENDING.has(e.type) ? e.attempt + 1 : e.attempt;
    const data = e.data || {};
    switch (e.type) {
      case "started":
        Object.assign(c, { progress: 0, message: "", started: e.at, finished: "", result: null, error: null, cancelRequested: false });
        break;
      case "progress":
        if (typeof data.progress === "number") c.progress = data.progress;
        if ("message" in data) c.message = data.message || "";
        break;
      case "succeeded":
        Object.assign(c, { progress: 100, finished: e.at, result: data.result === undefined ? null : data.result });
        break;
      case "failed":
        Object.assign(c, { finished: e.at, error: data.error || null });
        break;
      case "retrying":
        Object.assign(c, { finished: "", error: data.error || null });
        break;
      case "cancelled":
        Object.assign(c, { finished: e.at, cancelRequested: false });
        break;
      case "cancel_requested":
        c.cancelRequested = true;
        break;
      default:
    }
    return c;
  }
  function errorText(error) {
    if (!error) return "";
    return `${error.code || error.type || "error"}: ${error.message || ""}`;
  }
  // The API's error body in words: {"detail": {"code", "message"}} or FastAPI's list.
  function problemText(status, body) {
    const detail = body && body.detail;
    if (detail && typeof detail === "object" && !Array.isArray(detail)) {
      return `${status} ${detail.code || ""}: ${detail.message || ""}`.trim();
    }
    if (Array.isArray(detail) && detail.length) return `${status}: ${detail[0].msg}`;
    if (typeof detail === "string") return `${status}: ${detail}`;
    return `${status}: the request failed`;
  }
  async function readJson(response) {
    try { return await response.json(); } catch (_) { return null; }
  }
  function setLive(el, text) {
    if (el) el.textContent = text;
  }

  window.jobline = {
    FINAL, EVENT_TYPES, changesOf, errorText, formatTime, formatSeconds, problemText,
    readJson, setLive, setState, setTime,
  };

  document.addEventListener("DOMContentLoaded", () => {
    const logout = document.querySelector('[data-action="logout"]');
    if (logout) {
      logout.addEventListener("click", async () => {
        logout.disabled = true;
        await fetch("/api/v1/auth/cookie/logout", { method: "POST" }).catch(() => null);
        window.location.assign("/ui/login");
      });
    }
  });
})();
