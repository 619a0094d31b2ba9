// The study home: a participant's steps with the state of each, their stories and whether each counts, review
// rounds, consent (shown and changed here, saved as an Argilla response), the guidelines, the contact, and
// leaving the study. Every text comes from the study (annotation/participant-texts.yaml); every participant's
// text is put into the page as text, never as HTML.
"use strict";

(function () {
  const session = window.codigitSession;
  const $ = (id) => document.getElementById(id);
  let words = {};
  let state = null;
  let firstRender = true; // disclosures open or closed by the state only the first time: then as the person left them

  function say(key, values) {
    return (words[key] || key).replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? values[name] : ""));
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function date(iso) {
    const options = { year: "numeric", month: "long", day: "numeric" };
    return iso ? new Date(iso).toLocaleDateString(state.language, options) : "";
  }

  function formLink(datasetId) {
    return `/dataset/${datasetId}/annotation-mode`;
  }

  function notice(text) {
    setText("problem", "");
    setText("notice", text);
  }

  function problem(text) {
    setText("notice", "");
    setText("problem", text);
  }

  async function load() {
    const response = await session.api(`/codigit/home?lang=${encodeURIComponent(session.language())}`);
    if (response.status === 401) return session.signIn();
    if (!response.ok) return problem(say("error", { message: await session.detail(response) }));
    state = await response.json();
    words = state.texts;
    render();
    firstRender = false;
  }

  function render() {
    document.documentElement.lang = state.language;
    document.title = state.title;
    renderLanguages();
    setText("study-title", state.title);
    setText("heading", state.title);
    setText("description", state.description);
    setText("signed-in-as", say("signed_in_as", { username: state.username }));
    setText("sign-out", say("sign_out"));
    $("sign-out").hidden = false;
    setText("contact", say("contact", { contact: state.contact }));
    setText("guidelines-title", say("guidelines"));
    $("guidelines").innerHTML = state.guidelines_html; // the study's own markdown, rendered with HTML disabled
    if (firstRender) $("guidelines-box").open = !state.stories.length; // open until the first story is written
    $("content").hidden = false;
    const left = Boolean(state.withdrawn_at);
    $("withdrawn").hidden = !left;
    $("steps-section").hidden = left;
    $("leave").hidden = left;
    if (left) {
      setText("withdrawn-title", say("withdraw_title"));
      setText("withdrawn-text", say("withdrawn_text", { date: date(state.withdrawn_at) }));
      return;
    }
    setText("steps-title", say("steps_title"));
    renderConsent();
    renderAbout();
    renderStories();
    renderTexts();
    renderRounds();
    window.codigitUsecases.render(state, { say, date, session, reload: load });
    let n = 0; // steps are numbered as shown: the texts step is there only when the study asks for texts
    for (const step of document.querySelectorAll(".steps > .step")) {
      if (!step.hidden) step.querySelector(".n").textContent = String(++n);
    }
    setText("leave-title", say("withdraw_title"));
    setText("leave-text", say("withdraw_text"));
    setText("leave-button", say("withdraw_button"));
  }

  function renderLanguages() {
    const codes = Object.keys(state.languages);
    const select = $("language");
    $("language-box").hidden = codes.length < 2;
    setText("language-label", say("language"));
    select.replaceChildren(
      ...codes.map((code) => {
        const option = new Option(state.languages[code], code, false, code === state.language);
        option.lang = code;
        return option;
      }),
    );
  }

  async function chooseLanguage() {
    const language = $("language").value;
    const response = await session.api("/codigit/language", { method: "POST", body: JSON.stringify({ language }) });
    if (!response.ok) return problem(say("error", { message: await session.detail(response) }));
    session.remember({ language }); // Argilla's UI follows where it has the language; sign-in too
    await load();
  }

  function renderConsent() {
    const c = state.consent;
    setText("consent-title", say("step_consent"));
    const text = {
      none: say("consent_none"),
      given: say("consent_given", { date: date(c.given_at), version: c.answered_version }),
      invalid: say("consent_invalid", { problem: c.problem || "" }),
      again: say("consent_again", { version: c.version }),
    }[c.state];
    setText("consent-state", text);
    $("step-consent").dataset.state = c.state;
    setText("consent-read", say("consent_read"));
    $("consent-text").innerHTML = state.consent_html; // the study's consent text, rendered with HTML disabled
    if (firstRender) $("consent-text-box").open = c.state === "none" || c.state === "again";
    const form = $("consent-form");
    form.replaceChildren();
    for (const q of c.questions) {
      if (q.type === "label") {
        const set = document.createElement("fieldset");
        const legend = document.createElement("legend");
        legend.textContent = q.title + (q.required ? " *" : "");
        set.append(legend);
        if (q.description) {
          const help = document.createElement("p");
          help.className = "help";
          help.id = `consent-${q.name}-help`;
          help.textContent = q.description;
          set.setAttribute("aria-describedby", help.id);
          set.append(help);
        }
        for (const [value, label] of Object.entries(q.labels)) {
          const option = document.createElement("label");
          option.className = "option";
          const input = document.createElement("input");
          Object.assign(input, { type: "radio", name: q.name, value, checked: c.values[q.name] === value });
          option.append(input, " ", label);
          set.append(option);
        }
        form.append(set);
      } else {
        const label = document.createElement("label");
        label.htmlFor = `consent-${q.name}`;
        label.textContent = q.title;
        const input = document.createElement("input");
        Object.assign(input, { type: "text", id: label.htmlFor, name: q.name, value: c.values[q.name] || "" });
        input.maxLength = c.max_name_chars;
        input.autocomplete = "off";
        const wrap = document.createElement("div");
        wrap.className = "field";
        wrap.append(label);
        if (q.description) {
          const help = document.createElement("p");
          help.className = "help";
          help.id = `${label.htmlFor}-help`;
          help.textContent = q.description;
          input.setAttribute("aria-describedby", help.id);
          wrap.append(help);
        }
        wrap.append(input);
        form.append(wrap);
      }
    }
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = say("consent_save");
    form.append(save);
    form.onsubmit = saveConsent;
  }

  async function saveConsent(event) {
    event.preventDefault();
    const c = state.consent;
    const data = new FormData(event.target);
    const values = {};
    for (const q of c.questions) {
      const value = (data.get(q.name) || "").toString();
      if (q.type === "label" && value) values[q.name] = { value };
      if (q.type === "text" && value.trim()) values[q.name] = { value };
    }
    const body = JSON.stringify({ values, status: "submitted" });
    // The consent record of the current version: a first answer is created, a later one replaces it (Argilla
    // keeps one response per person and record).
    const response = c.response_id
      ? await session.api(`/responses/${c.response_id}`, { method: "PUT", body })
      : await session.api(`/records/${c.record_id}/responses`, { method: "POST", body });
    if (!response.ok) return problem(await session.detail(response));
    await load();
    notice(say("consent_saved"));
  }

  function renderAbout() {
    setText("about-title", say("step_about"));
    setText("about-state", say(state.about.state === "done" ? "about_done" : "about_todo"));
    $("step-about").dataset.state = state.about.state;
    const link = $("about-link");
    link.textContent = say("about_open");
    link.href = formLink(state.about.dataset_id);
  }

  function storyState(story) {
    const key = { counts: "story_counts", draft: "story_draft", discarded: "story_discarded",
                  no_consent: "story_no_consent", broken: "story_broken" }[story.state];
    return say(key, { problem: story.problem || "" });
  }

  function renderStories() {
    $("step-stories").hidden = !state.stories_dataset_id; // a study that asks only for whole texts
    if (!state.stories_dataset_id) return;
    setText("stories-title", say("step_stories"));
    const counting = state.stories.filter((s) => s.state === "counts").length;
    const written = state.stories.filter((s) => s.state !== "discarded").length;
    setText("stories-state", say("stories_counts", { written, counting }));
    $("step-stories").dataset.state = counting ? "done" : "todo";
    const list = $("stories");
    list.replaceChildren();
    for (const story of state.stories) {
      const item = document.createElement("li");
      item.className = "story";
      item.dataset.state = story.state;
      const title = document.createElement("p");
      title.className = "story-title";
      title.textContent = story.invitation_title;
      const prompt = document.createElement("p");
      prompt.className = "story-prompt";
      prompt.textContent = story.prompt.length > 160 ? story.prompt.slice(0, 157) + "…" : story.prompt;
      const badge = document.createElement("p");
      badge.className = "badge";
      badge.textContent = storyState(story);
      item.append(title, prompt, badge);
      if (state.feedback_to_authors && story.feedback.length) {
        const box = document.createElement("div");
        box.className = "feedback";
        const heading = document.createElement("p");
        heading.className = "feedback-title";
        heading.textContent = say("feedback_title");
        const reviews = document.createElement("ul");
        for (const review of story.feedback) {
          const li = document.createElement("li");
          li.textContent = `★ ${review.rating}/5 · ${review.decision}` + (review.comment ? ` — “${review.comment}”` : "");
          reviews.append(li);
        }
        box.append(heading, reviews);
        item.append(box);
      }
      list.append(item);
    }
    const link = $("stories-link");
    link.textContent = say("stories_write");
    link.href = formLink(state.stories_dataset_id);
  }

  function renderTexts() {
    $("step-texts").hidden = !state.contributions;
    if (!state.contributions) return;
    setText("texts-title", say("step_texts"));
    setText("texts-state", say("texts_counts", { given: state.contributions.given, counting: state.contributions.counting }));
    $("step-texts").dataset.state = state.contributions.counting ? "done" : "todo";
    const link = $("texts-link");
    link.textContent = say("texts_write");
    link.href = formLink(state.contributions.dataset_id);
  }

  function renderRounds() {
    setText("reviews-title", say(state.stories_dataset_id ? "step_reviews" : "step_reviews_texts"));
    const list = $("rounds");
    list.replaceChildren();
    if (!state.rounds.length) {
      const li = document.createElement("li");
      li.textContent = say("reviews_none");
      list.append(li);
    }
    for (const round of state.rounds) {
      const li = document.createElement("li");
      li.className = "round";
      const total = round.done + round.waiting;
      const text = document.createElement("span");
      const kind = round.texts ? "reviews_texts_" : "reviews_"; // a round of texts is named as such
      text.textContent = round.closed_at
        ? say(kind + "closed", { round: round.round, done: round.done })
        : say(kind + "round", { round: round.round, done: round.done, total });
      li.append(text);
      if (!round.closed_at && round.waiting > 0) {
        const link = document.createElement("a");
        link.className = "button";
        link.href = formLink(round.dataset_id);
        link.textContent = say("reviews_open");
        li.append(" ", link);
      }
      list.append(li);
    }
    const waiting = state.rounds.some((r) => !r.closed_at && r.waiting > 0);
    $("step-reviews").dataset.state = !state.rounds.length ? "none-yet" : waiting ? "todo" : "done";
  }

  function askToLeave() {
    const dialog = $("leave-dialog");
    setText("leave-dialog-title", say("withdraw_confirm_title"));
    setText("leave-dialog-text", say("withdraw_confirm_text"));
    setText("leave-reason-label", say("withdraw_reason"));
    setText("leave-cancel", say("cancel"));
    setText("leave-confirm", say("withdraw_yes"));
    $("leave-reason").value = "";
    dialog.returnValue = "";
    dialog.showModal();
    $("leave-cancel").focus(); // the safe choice first
  }

  async function leave() {
    if ($("leave-dialog").returnValue !== "confirm") return $("leave-button").focus();
    const body = JSON.stringify({ confirm: true, reason: $("leave-reason").value });
    const response = await session.api("/codigit/withdraw", { method: "POST", body });
    if (!response.ok) return problem(say("error", { message: await session.detail(response) }));
    await load();
    $("main").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("leave-button").addEventListener("click", askToLeave);
    $("leave-dialog").addEventListener("close", leave);
    $("sign-out").addEventListener("click", () => session.signOut());
    $("language").addEventListener("change", chooseLanguage);
    load().catch((error) => problem(String(error)));
  });
})();
