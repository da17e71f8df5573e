// The settings page: the default Talos version and the API tokens.

import { api } from "./api.js";
import { actionButton, copyText, field, flash, formIssues, h, onSubmit, pageHeader, render, table, time } from "./ui.js";

/** The settings page. */
export async function settingsPage() {
  const [settings, tokens] = await Promise.all([api("GET", "/settings"), api("GET", "/tokens")]);

  const settingsForm = h(
    "form",
    { class: "card", id: "settings-form", "aria-labelledby": "defaults-title" },
    h("h2", { id: "defaults-title" }, "Default bootstrap settings"),
    formIssues(),
    field("Talos version", h("input", { name: "talos_version", required: true, value: settings.talos_version, autocomplete: "off" }), "Installed when a bootstrap names none, vX.Y.Z."),
    // The default schematic becomes a select here when the schematics API exists.
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Save defaults")),
  );
  onSubmit(settingsForm, async (data) => {
    const body = { talos_version: data.get("talos_version") };
    if (settings.default_schematic_id) body.default_schematic_id = settings.default_schematic_id;
    await api("PUT", "/settings", body);
    flash("Saved the default bootstrap settings.");
  });

  const created = h("div", { id: "created-token", "aria-live": "polite" });
  const tokenForm = h(
    "form",
    { class: "inline-form", id: "token-form" },
    formIssues(),
    field("New token's name", h("input", { name: "name", required: true, autocomplete: "off", placeholder: "terraform-ci" })),
    h("button", { type: "submit", class: "primary" }, "Create token"),
  );
  onSubmit(tokenForm, async (data) => {
    const token = await api("POST", "/tokens", { name: data.get("name") });
    tokenForm.reset();
    created.replaceChildren(h(
      "div",
      { class: "card secret-once", role: "alert" },
      h("p", {}, `The token ${token.name}: store it now, it cannot be shown again.`),
      h("code", { class: "secret" }, token.secret),
      " ",
      actionButton("Copy", async () => {
        await copyText(token.secret);
        flash("Copied the token.");
      }, { class: "small" }),
    ));
    await refreshTokens();
  });

  const tokensTable = h("div", { id: "tokens" });
  const refreshTokens = async (list) => {
    const current = list ?? await api("GET", "/tokens");
    const rows = current.map((token) => h(
      "tr",
      { "data-token": token.id },
      h("th", { scope: "row", "data-label": "Name" }, token.name),
      h("td", { "data-label": "Created" }, time(token.created_at)),
      h("td", { "data-label": "Last used" }, time(token.last_used_at)),
      h(
        "td",
        { "data-label": "Actions", class: "row-actions" },
        actionButton("Revoke", async () => {
          if (!confirm(`Revoke the token ${token.name}? Whatever uses it loses access at once.`)) return;
          await api("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
          flash(`Revoked the token ${token.name}.`);
          await refreshTokens();
        }, { class: "small danger" }),
      ),
    ));
    tokensTable.replaceChildren(table("API tokens", ["Name", "Created", "Last used", "Actions"], rows));
  };
  await refreshTokens(tokens);

  render(
    pageHeader("Settings"),
    // Provider accounts (Hetzner Robot and Cloud) get their section here when their API exists.
    settingsForm,
    h(
      "section",
      { class: "card", "aria-labelledby": "tokens-title" },
      h("h2", { id: "tokens-title" }, "API tokens"),
      h("p", { class: "muted" }, "For Terraform, scripts and this dashboard; sent as Authorization: Bearer <token>."),
      tokenForm,
      created,
      tokensTable,
    ),
  );
}
