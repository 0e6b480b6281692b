// The login form posts to the cookie backend; the answer decides what the page says.
"use strict";
(() => {
  const form = document.querySelector('form[data-form="login"]');
  const message = document.querySelector("[data-login-message]");
  if (!form || !message) return;
  function say(text) {
    message.textContent = text;
    message.hidden = !text;
    if (text) message.setAttribute("data-error", ""); else message.removeAttribute("data-error");
  }
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    say("");
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        window.location.assign(form.dataset.next || "/ui/");
        return;
      }
      const body = await window.jobline.readJson(response);
      if (response.status === 400) {
        say("Wrong email or password.");
      } else if (response.status === 429) {
        const wait = response.headers.get("Retry-After");
        say(`Too many failed logins: try again in ${wait || "a few"} seconds.`);
      } else if (response.status === 422) {
        say("Enter your email and password.");
      } else {
        say(`Logging in failed: ${window.jobline.problemText(response.status, body)}`);
      }
    } catch (_) {
      say("The server did not answer; try again.");
    } finally {
      button.disabled = false;
    }
  });
})();
