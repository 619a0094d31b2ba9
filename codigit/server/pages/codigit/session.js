// The participant's Argilla sign-in, shared by codigit's pages and the UI script: Argilla's UI (nuxt auth, strategy
// "local") keeps the token in localStorage as "auth._token.local" = "Bearer <jwt>", with its expiry in ms beside it,
// and its sign-in page goes, once signed in, to the path stored under "redirectTo" in localStorage "argilla".
"use strict";

window.codigitSession = (function () {
  const TOKEN = "auth._token.local";
  const EXPIRES = "auth._token_expiration.local";

  function token() {
    const value = localStorage.getItem(TOKEN);
    const expires = Number(localStorage.getItem(EXPIRES));
    if (!value || !value.startsWith("Bearer ") || (expires && expires < Date.now())) return null;
    return value;
  }

  function api(path, options = {}) {
    const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
    const value = token();
    if (value) headers.Authorization = value;
    return fetch(`/api/v1${path}`, { ...options, headers });
  }

  async function detail(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (body.detail && body.detail.message) return body.detail.message;
      return JSON.stringify(body.detail || body);
    } catch (error) {
      return `${response.status} ${response.statusText}`;
    }
  }

  // Argilla's UI keeps its own settings (language, theme, where to go after sign-in) in localStorage "argilla".
  function settings() {
    try {
      return JSON.parse(localStorage.getItem("argilla") || "{}") || {};
    } catch (error) {
      return {};
    }
  }

  function remember(values) {
    localStorage.setItem("argilla", JSON.stringify({ ...settings(), ...values }));
  }

  // The language the participant chose (on the study home, or in Argilla's settings), else the browser's.
  function language() {
    return settings().language || navigator.language || "";
  }

  function signIn(back = "/study/") {
    remember({ redirectTo: back });
    window.location.assign("/sign-in");
  }

  function signOut() {
    for (const key of [TOKEN, EXPIRES, "auth._refresh_token.local", "auth._refresh_token_expiration.local"]) {
      localStorage.removeItem(key);
    }
    localStorage.setItem("auth.strategy", "local");
    sessionStorage.clear();
    window.location.assign("/sign-in");
  }

  return { token, api, detail, signIn, signOut, language, remember };
})();
