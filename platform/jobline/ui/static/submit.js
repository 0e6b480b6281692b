// The submit form: the chosen type's fields (rendered from its JSON Schema by the server,
// one <template> per type) become the payload; the API validates it, and its 422 errors
// are shown beside the fields they name.
"use strict";
(() => {
  const J = window.jobline;
  const form = document.querySelector('form[data-form="submit"]');
  if (!form) return;
  const select = form.querySelector('select[name="type"]');
  const holder = form.querySelector("[data-fields]");
  const description = form.querySelector("[data-type-description]");
  const message = form.querySelector("[data-form-message]");

  function clearErrors() {
    for (const el of form.querySelectorAll(".error[data-error]")) el.remove();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    message.hidden = true;
    message.textContent = "";
    message.removeAttribute("data-error");
  }

  function fieldError(name, text) {
    const box = form.querySelector(`[data-field-name="${CSS.escape(name)}"]`);
    if (!box) return false;
    let p = box.querySelector(".error[data-error]");
    if (!p) {
      p = document.createElement("p");
      p.className = "error";
      p.setAttribute("data-error", "");
      p.dataset.errorFor = name;
      p.id = `error-${name}`;
      box.append(p);
    }
    p.textContent = p.textContent ? `${p.textContent}; ${text}` : text;
    const input = box.querySelector("input, select, textarea");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", p.id);
    }
    return true;
  }

  function formError(text) {
    message.textContent = message.textContent ? `${message.textContent} ${text}` : text;
    message.hidden = false;
    message.setAttribute("data-error", "");
  }

  function chooseType() {
    const tpl = document.querySelector(`template[data-fields-for="${CSS.escape(select.value)}"]`);
    if (!tpl) return;
    const legend = holder.querySelector("legend");
    holder.replaceChildren(legend, tpl.content.cloneNode(true));
    if (description) description.textContent = tpl.dataset.description || "";
    clearErrors();
    const url = new URL(window.location.href);
    url.searchParams.set("type", select.value);
    window.history.replaceState(null, "", url);
  }

  // The payload from the fields; a field left empty is left out (its default applies).
  function payload() {
    const out = {};
    let ok = true;
    for (const input of holder.querySelectorAll("[data-kind]")) {
      const kind = input.dataset.kind;
      const raw = input.value;
      if (kind === "boolean") {
        out[input.name] = input.checked;
      } else if (kind === "payload" || kind === "json") {
        if (!raw.trim()) continue;
        try {
          const value = JSON.parse(raw);
          if (kind === "payload") {
            if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
            return value;
          }
          out[input.name] = value;
        } catch (_) {
          fieldError(input.name, kind === "payload" ? "must be a JSON object" : "is not valid JSON");
          ok = false;
        }
      } else if (raw === "") {
        continue;
      } else if (kind === "integer" || kind === "number") {
        const n = Number(raw);
        out[input.name] = Number.isFinite(n) ? n : raw;
      } else {
        out[input.name] = raw;
      }
    }
    return ok ? out : null;
  }

  // loc of a 422 (FastAPI's ["body", "payload", "x"], or the payload's own ["x"]).
  function fieldOf(loc, fromPayload) {
    const parts = [...(loc || [])];
    if (!fromPayload) {
      if (parts[0] === "body") parts.shift();
      if (parts[0] === "payload" && parts.length > 1) parts.shift();
    }
    return parts.length ? String(parts[0]) : null;
  }

  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    clearErrors();
    const body = { type: select.value, payload: payload() };
    if (body.payload === null) return;
    const options = form.querySelectorAll("[data-option]");
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    for (const input of options) {
      const raw = input.value.trim();
      if (!raw) continue;
      if (input.name === "idempotency_key") headers["Idempotency-Key"] = raw;
      else body[input.name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
    }
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    let response;
    try {
      response = await fetch("/api/v1/jobs", { method: "POST", headers, body: JSON.stringify(body) });
    } catch (_) {
      formError("The server did not answer; try again.");
      button.disabled = false;
      return;
    }
    const answer = await J.readJson(response);
    if ((response.status === 202 || response.status === 200) && answer && answer.id) {
      window.location.assign(`/ui/jobs/${answer.id}`);
      return;
    }
    button.disabled = false;
    const detail = answer && answer.detail;
    if (response.status === 422 && Array.isArray(detail)) {
      for (const e of detail) {
        const name = fieldOf(e.loc, false);
        if (!name || !fieldError(name, e.msg)) formError(e.msg);
      }
    } else if (response.status === 422 && detail && Array.isArray(detail.errors)) {
      for (const e of detail.errors) {
        const name = fieldOf(e.loc, true);
        if (!name || !fieldError(name, e.msg)) formError(`${(e.loc || []).join(".")}: ${e.msg}`);
      }
      if (!form.querySelector(".error[data-error]")) formError(J.problemText(response.status, answer));
    } else {
      formError(J.problemText(response.status, answer));
    }
    const first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  });
  select.addEventListener("change", chooseType);
})();
