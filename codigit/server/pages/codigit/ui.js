// The study's additions to Argilla's UI, loaded on every UI page by a <script> tag the server adds (codigit.server.ui).
// For participants (annotators) only; organisers keep the full Argilla UI. It never changes what Argilla sends:
// every answer still goes to Argilla's own endpoints, where the server applies the study's rules.
//  - Landing: after signing in, a participant goes to the study home (/study/), and a link back to it is always there.
//  - Refusals: Argilla's UI shows a refused answer's message (the study's words) itself; in bulk mode it only says
//    "Some records failed", so the study's message for each refused item is shown here, until closed.
//  - Nothing lost by one click: "Discard" in the writing form asks first, saying what it does.
//  - Limits before submitting: a live character count under the prompt and the story.
//  - A draft is labelled as not counting, under the writing form's buttons.
//  - No API key, docs link or team percentage: hidden from participants (ui.css, under html.codigit-participant);
//    the study home says how far each review round is, in the participant's own terms.
//  - Sign-in shows the study's title and one-line description.
"use strict";

(function () {
  const session = window.codigitSession;
  const BULK = /(^|\/)api\/v1\/me\/responses\/bulk(\?|$)/; // the UI's axios calls "api/v1/…", relative
  let study = null; // title, description, contact, texts, limits: public
  let me = null;

  async function loadStudy() {
    if (study) return study;
    const response = await fetch(`/api/v1/codigit/study?lang=${encodeURIComponent(session.language())}`);
    study = response.ok ? await response.json() : null;
    return study;
  }

  async function loadMe() {
    if (!session.token()) return null;
    const cached = sessionStorage.getItem("codigit.me");
    if (cached && JSON.parse(cached).token === session.token()) return JSON.parse(cached).me;
    const response = await session.api("/me");
    if (!response.ok) return null;
    const body = await response.json();
    const value = { role: body.role, username: body.username };
    if (value.role === "annotator" && study && study.research_workspace) {
      // researchers coding stories are annotators too, in the research workspace: Argilla's own UI is theirs
      const spaces = await session.api("/me/workspaces");
      const names = spaces.ok ? (await spaces.json()).items.map((w) => w.name) : [];
      if (names.includes(study.research_workspace)) value.role = "researcher";
    }
    sessionStorage.setItem("codigit.me", JSON.stringify({ token: session.token(), me: value }));
    return value;
  }

  async function storiesDataset() {
    const cached = JSON.parse(sessionStorage.getItem("codigit.stories") || "{}");
    if (cached.token === session.token()) return cached.id; // the same person as when it was asked
    const response = await session.api("/codigit/home");
    if (!response.ok) return null;
    const id = (await response.json()).stories_dataset_id;
    sessionStorage.setItem("codigit.stories", JSON.stringify({ token: session.token(), id }));
    return id;
  }

  function say(key, values) {
    const text = (study && study.texts[key]) || "";
    return text.replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? values[name] : ""));
  }

  // --- refusals ---------------------------------------------------------------------------------------------
  function showRefusal(message) {
    let box = document.getElementById("codigit-refusal");
    if (!box) {
      box = document.createElement("div");
      box.id = "codigit-refusal";
      box.setAttribute("role", "alert");
      const text = document.createElement("p");
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", "Close");
      close.addEventListener("click", () => box.remove());
      box.append(text, close);
      document.body.append(box);
    }
    box.querySelector("p").textContent = message;
  }

  function bulkRefusals(body) {
    try {
      const details = (JSON.parse(body).items || []).filter((item) => item.error).map((item) => item.error.detail);
      return [...new Set(details)].join(" ");
    } catch (error) {
      return "";
    }
  }

  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    if (BULK.test(String(url))) {
      this.addEventListener("load", () => {
        const message = bulkRefusals(this.responseText);
        if (message) showRefusal(message);
      });
    }
    return open.call(this, method, url, ...rest);
  };

  // --- discard asks first (the writing form only) ---------------------------------------------------------------
  let confirmed = false;

  function isDiscard(element) {
    return (element && element.closest && element.closest("button.button--discard")) || null;
  }

  async function onWritingForm() {
    const match = window.location.pathname.match(/^\/dataset\/([0-9a-f-]{36})\//);
    return Boolean(match) && match[1] === (await storiesDataset());
  }

  function askBeforeDiscard(button) {
    const dialog = document.createElement("dialog");
    dialog.id = "codigit-confirm";
    dialog.setAttribute("aria-labelledby", "codigit-confirm-title");
    dialog.setAttribute("aria-describedby", "codigit-confirm-text");
    dialog.innerHTML =
      '<form method="dialog"><h2 id="codigit-confirm-title"></h2><p id="codigit-confirm-text"></p>' +
      '<div class="codigit-actions"><button value="cancel" class="codigit-secondary"></button>' +
      '<button value="yes" class="codigit-danger"></button></div></form>';
    dialog.querySelector("h2").textContent = say("discard_title");
    dialog.querySelector("p").textContent = say("discard_text");
    // Argilla's shortcuts listen on the whole page (Enter submits, Backspace discards): keys pressed in the dialog
    // must not reach them. Their default action (a button's Enter, Escape closing) still happens.
    dialog.addEventListener("keydown", (event) => event.stopPropagation());
    const [cancel, yes] = dialog.querySelectorAll("button");
    cancel.textContent = say("cancel");
    yes.textContent = say("discard_yes");
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (dialog.returnValue === "yes") {
        confirmed = true;
        button.click();
        confirmed = false;
      } else {
        button.focus();
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  }

  function guardDiscard(event, button) {
    if (!button || confirmed || !me || me.role !== "annotator" || !study) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    onWritingForm().then((writing) => {
      if (writing) return askBeforeDiscard(button);
      confirmed = true;
      button.click();
      confirmed = false;
    });
  }

  document.addEventListener("click", (event) => guardDiscard(event, isDiscard(event.target)), true);
  // Argilla's shortcut for Discard is Backspace outside a text box: one key press must not remove a story either.
  document.addEventListener(
    "keydown",
    (event) => {
      const editing = event.target.closest && event.target.closest('input, textarea, [contenteditable="true"]');
      if (event.key === "Backspace" && !editing && !document.getElementById("codigit-confirm")) {
        guardDiscard(event, document.querySelector("button.button--discard"));
      }
    },
    true,
  );

  function noteDrafts() {
    const footer = document.querySelector(".footer-form__content");
    if (!footer || !study || document.getElementById("codigit-draft-note")) return;
    const note = document.createElement("p");
    note.id = "codigit-draft-note";
    note.className = "codigit-counter";
    note.textContent = say("draft_note");
    footer.after(note);
  }

  // --- limits before submitting ---------------------------------------------------------------------------------
  function countCharacters() {
    if (!study || !study.limits) return;
    for (const [name, limit] of Object.entries(study.limits)) {
      const question = document.querySelector(`[aria-label="Question: ${name}"]`);
      const box = question && question.querySelector('[contenteditable="true"], textarea');
      if (!box) continue;
      let counter = question.querySelector(".codigit-counter");
      if (!counter) {
        counter = document.createElement("p");
        counter.className = "codigit-counter";
        counter.id = `codigit-counter-${name}`;
        question.append(counter);
        box.setAttribute("aria-describedby", counter.id);
      }
      const used = (box.value !== undefined ? box.value : box.innerText).trim().length;
      const text = `${used} / ${limit} — ${say("limit_note", { limit })}`;
      if (counter.textContent !== text) counter.textContent = text;
      counter.classList.toggle("codigit-over", used > limit);
    }
  }

  // --- where participants land, and the way back ----------------------------------------------------------------
  let meToken = null;

  async function route() {
    if (session.token() !== meToken) {
      meToken = session.token(); // signed in, out, or as someone else, without a page load
      me = await loadMe();
    }
    const path = window.location.pathname;
    if (path.startsWith("/study")) return window.location.replace("/study/"); // not a route of Argilla's app
    if (path === "/" && me && me.role === "annotator") return window.location.replace("/study/");
    document.documentElement.classList.toggle("codigit-participant", Boolean(me && me.role === "annotator"));
    if (me && me.role === "annotator" && study) document.title = study.title;
    if (me && me.role === "annotator" && !document.getElementById("codigit-home")) {
      const link = document.createElement("a");
      link.id = "codigit-home";
      link.href = "/study/";
      link.textContent = "← " + say("home_link");
      document.body.append(link);
    }
    if (path.startsWith("/sign-in")) signInWords();
  }

  function signInWords() {
    if (!study || document.getElementById("codigit-sign-in")) return;
    const form = document.querySelector("form");
    if (!form) return;
    const box = document.createElement("div");
    box.id = "codigit-sign-in";
    const title = document.createElement("h1");
    title.textContent = study.title;
    const line = document.createElement("p");
    line.textContent = study.description;
    const contact = document.createElement("p");
    contact.className = "codigit-contact";
    contact.textContent = say("contact", { contact: study.contact });
    box.append(title, line, contact);
    box.lang = study.language;
    form.prepend(box);
  }

  for (const name of ["pushState", "replaceState"]) {
    const original = history[name];
    history[name] = function (...args) {
      const result = original.apply(this, args);
      setTimeout(route, 0);
      return result;
    };
  }
  window.addEventListener("popstate", route);

  async function start() {
    await loadStudy();
    await route();
    new MutationObserver(() => {
      if (window.location.pathname.startsWith("/sign-in")) signInWords();
      if (me && me.role === "annotator") {
        countCharacters();
        noteDrafts();
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
    document.addEventListener("input", countCharacters, true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
