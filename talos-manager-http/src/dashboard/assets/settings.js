// The settings page: Hetzner provider accounts, the default bootstrap settings and the API tokens.

import { api } from "./api.js";
import { actionButton, copyText, field, flash, formIssues, h, onSubmit, pageHeader, render, table, time } from "./ui.js";

const PROVIDERS = {
  hetzner_robot: { title: "Hetzner Robot", name: "Webservice user", secret: "Webservice password" },
  hetzner_cloud: { title: "Hetzner Cloud", name: "Label (e.g. the project's name)", secret: "API token (read & write)" },
};

/** The settings page. */
export async function settingsPage() {
  const [settings, tokens, schematics] = await Promise.all([
    api("GET", "/settings"),
    api("GET", "/tokens"),
    api("GET", "/schematics"),
  ]);

  const settingsForm = h(
    "form",
    { class: "card", id: "settings-form", "aria-labelledby": "defaults-title" },
    h("h2", { id: "defaults-title" }, "Default bootstrap settings"),
    formIssues(),
    field("Talos version", h("input", { name: "talos_version", required: true, value: settings.talos_version, autocomplete: "off" }), "Installed when a bootstrap names none, vX.Y.Z."),
    field(
      "Default schematic",
      h(
        "select",
        { name: "default_schematic_id" },
        h("option", { value: "" }, "None: the plain Talos image"),
        schematics.map((schematic) => h("option", { value: schematic.id, selected: schematic.id === settings.default_schematic_id }, schematic.name)),
      ),
      h("span", {}, "Used when a bootstrap names none. ", h("a", { href: "/schematics" }, "Manage schematics"), "."),
    ),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Save defaults")),
  );
  onSubmit(settingsForm, async (data) => {
    const body = { talos_version: data.get("talos_version") };
    if (data.get("default_schematic_id")) body.default_schematic_id = data.get("default_schematic_id");
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
    await providerAccountsSection(),
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

/**
 * The provider accounts: the Hetzner Robot webservice users and Cloud projects whose servers are
 * synced. Secrets are sent, verified by the service against the provider, and never shown again.
 */
async function providerAccountsSection() {
  const section = h("section", { class: "card", id: "provider-accounts", "aria-labelledby": "accounts-title" });
  const providerSelect = h(
    "select",
    { name: "provider" },
    Object.entries(PROVIDERS).map(([value, provider]) => h("option", { value }, provider.title)),
  );
  const nameInput = h("input", { name: "name", required: true, autocomplete: "off" });
  const secretInput = h("input", { name: "secret", type: "password", required: true, autocomplete: "new-password" });
  const nameField = field(PROVIDERS.hetzner_robot.name, nameInput);
  const secretField = field(PROVIDERS.hetzner_robot.secret, secretInput, "Checked with the provider before it is saved; stored encrypted and never shown again.");
  const relabel = () => {
    const provider = PROVIDERS[providerSelect.value];
    nameField.querySelector("label").textContent = provider.name;
    secretField.querySelector("label").textContent = provider.secret;
  };
  providerSelect.addEventListener("change", relabel);
  const form = h(
    "form",
    { class: "inline-form", id: "account-form" },
    formIssues(),
    field("Provider", providerSelect),
    nameField,
    secretField,
    h("button", { type: "submit", class: "primary" }, "Add account"),
  );
  const list = h("div", { id: "accounts" });
  const refresh = async () => {
    const accounts = await api("GET", "/provider-accounts");
    const rows = accounts.map((account) => h(
      "tr",
      { "data-account": account.id },
      h("th", { scope: "row", "data-label": "Name" }, account.name),
      h("td", { "data-label": "Provider" }, PROVIDERS[account.provider]?.title ?? account.provider),
      h("td", { "data-label": "Added" }, time(account.created_at)),
      h(
        "td",
        { "data-label": "Actions", class: "row-actions" },
        actionButton("Replace secret", async () => {
          const secret = prompt(`The new ${PROVIDERS[account.provider]?.secret ?? "secret"} for ${account.name}:`);
          if (!secret) return;
          await api("PUT", `/provider-accounts/${encodeURIComponent(account.id)}`, { name: account.name, secret });
          flash(`Replaced the secret of ${account.name}.`);
        }, { class: "small" }),
        actionButton("Remove", async () => {
          if (!confirm(`Remove the account ${account.name}? Its servers leave talos-manager with their machine configs; nothing changes at Hetzner.`)) return;
          await api("DELETE", `/provider-accounts/${encodeURIComponent(account.id)}`);
          flash(`Removed the account ${account.name}.`);
          await refresh();
        }, { class: "small danger" }),
      ),
    ));
    list.replaceChildren(accounts.length
      ? table("Provider accounts", ["Name", "Provider", "Added", "Actions"], rows)
      : h("p", { class: "muted" }, "No account yet: add one to see your servers."));
  };
  onSubmit(form, async (data) => {
    const account = await api("POST", "/provider-accounts", {
      provider: data.get("provider"),
      name: data.get("name"),
      secret: data.get("secret"),
    });
    form.reset();
    relabel();
    flash(`Added the account ${account.name}. Sync on the servers page to fetch its servers.`);
    await refresh();
  });
  await refresh();
  section.append(
    h("h2", { id: "accounts-title" }, "Provider accounts"),
    h("p", { class: "muted" }, "Hetzner Robot webservice users and Cloud projects whose servers talos-manager syncs."),
    list,
    form,
  );
  return section;
}
