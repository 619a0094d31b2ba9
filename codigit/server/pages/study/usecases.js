// The use-case register on the study home: every proposed use with the board's decision (who proposed it is never
// shown, only "your proposal" to its proposer), and the form to propose one. Participants' text goes into the page
// as text, never as HTML. study.js calls render() with the page's state and its helpers.
"use strict";

window.codigitUsecases = (function () {
  const $ = (id) => document.getElementById(id);
  let bound = false;

  function line(className, text) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    return p;
  }

  function item(use, say, date) {
    const li = document.createElement("li");
    li.className = "usecase";
    li.dataset.state = use.state;
    const title = line("usecase-title", use.title);
    if (use.mine) {
      const mine = document.createElement("span");
      mine.className = "mine";
      mine.textContent = ` · ${say("usecase_mine")}`;
      title.append(mine);
    }
    const decided = { date: date(use.decided_at), reason: use.reason };
    const state = use.state === "proposed" ? say("usecase_proposed") : say(`usecase_${use.state}`, decided);
    li.append(title, line("badge", state), line("usecase-who", `${say("usecase_who")}: ${use.who}`),
      line("usecase-purpose", `${say("usecase_purpose")}: ${use.purpose}`),
      line("usecase-not-for", `${say("usecase_not_for")}: ${use.not_for}`));
    return li;
  }

  // tools: { say, date, session, reload }
  function render(state, tools) {
    const { say, date } = tools;
    $("usecases").hidden = !state.usecases || Boolean(state.withdrawn_at);
    if (!state.usecases) return;
    $("usecases-title").textContent = say("usecases_title");
    $("usecases-intro").textContent = say("usecases_intro");
    const list = $("usecase-list");
    list.replaceChildren(...state.usecases.map((use) => item(use, say, date)));
    if (!state.usecases.length) list.append(line("help", say("usecases_none")));
    $("usecase-propose-title").textContent = say("usecases_propose");
    for (const [name, key] of [["title", "usecase_title"], ["who", "usecase_who"], ["purpose", "usecase_purpose"],
      ["not-for", "usecase_not_for"]]) {
      $(`usecase-${name}-label`).textContent = say(key);
    }
    $("usecase-send").textContent = say("usecase_send");
    if (bound) return;
    bound = true;
    $("usecase-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const body = {};
      for (const name of ["title", "who", "purpose", "not_for"]) body[name] = (data.get(name) || "").toString();
      $("usecase-status").textContent = "";
      const response = await tools.session.api("/codigit/usecases", { method: "POST", body: JSON.stringify(body) });
      if (!response.ok) {
        $("usecase-problem").textContent = await tools.session.detail(response); // what was typed stays
        return;
      }
      $("usecase-problem").textContent = "";
      event.target.reset();
      $("usecase-propose").open = false;
      await tools.reload();
      $("usecase-status").textContent = say("usecase_sent");
    });
  }

  return { render };
})();
