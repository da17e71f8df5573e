// The dashboard's entry point: sign-in, navigation and the page for the current address.

import { ApiError, api, authorization, signIn, signOut } from "./api.js";
import { clustersPage } from "./clusters.js";
import { configsPage } from "./configs.js";
import { jobsPage } from "./jobs.js";
import { rulesPage } from "./rules.js";
import { schematicsPage } from "./schematics.js";
import { configurePage, serversPage } from "./servers.js";
import { settingsPage } from "./settings.js";
import { field, formIssues, h, onSubmit, render, showIssues } from "./ui.js";

/** Page path → function that renders it into <main>. */
const PAGES = {
  "/servers": serversPage,
  "/configure": configurePage,
  "/clusters": clustersPage,
  "/configs": configsPage,
  "/schematics": schematicsPage,
  "/label-taint-rules": rulesPage,
  "/settings": settingsPage,
  "/jobs": jobsPage,
};

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  document.title = "Sign in · talos-manager";
  const kind = h(
    "select",
    { name: "kind" },
    h("option", { value: "token" }, "API token"),
    h("option", { value: "password" }, "Password (BASIC_AUTH_PASSWORD)"),
  );
  const secret = h("input", { name: "secret", type: "password", required: true, autocomplete: "current-password" });
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", {}, "Use an API token (from ", h("code", {}, "talos-manager token create"), ", or the admin token printed at the first start) or the service's password."),
    formIssues(),
    field("Credential", kind),
    field("Token or password", secret),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  onSubmit(form, async (data) => {
    signIn(data.get("kind"), data.get("secret"));
    try {
      await api("GET", "/settings");
    } catch (error) {
      signOut();
      throw error instanceof ApiError && error.status === 401
        ? new ApiError(401, { message: "These credentials were refused." })
        : error;
    }
    start();
  });
  render(form);
  if (message) showIssues(form, [], message);
  secret.focus();
}

function currentNav() {
  for (const link of document.querySelectorAll("#nav a")) {
    const active = location.pathname === link.getAttribute("href")
      || (location.pathname === "/configure" && link.getAttribute("href") === "/servers");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function start() {
  if (!authorization()) {
    showLogin();
    return;
  }
  document.getElementById("nav").hidden = false;
  currentNav();
  const page = PAGES[location.pathname] || PAGES["/servers"];
  try {
    await page();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    render(h("div", { class: "card error", role: "alert" }, h("h1", {}, "Something went wrong"), h("p", {}, error.message || String(error))));
  }
}

window.addEventListener("unauthorized", () => {
  // While signing in, the form itself says the credentials were refused.
  if (document.querySelector("form.login")) return;
  showLogin("Please sign in again: the credentials were refused or have been revoked.");
});

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  showLogin();
});

start();
