// The Talos schematics page: list, create, edit, delete. The service registers each schematic
// with the Image Factory and forces its own `talos.config=` kernel argument into it.

import { api } from "./api.js";
import { actionButton, field, flash, formIssues, h, onSubmit, pageHeader, param, render, table, time } from "./ui.js";

const EXAMPLE = `customization:
  systemExtensions:
    officialExtensions:
      - siderolabs/amd-ucode
`;

/** The schematics page; `?new` opens the create form, `?edit=<id>` the edit form. */
export async function schematicsPage() {
  if (param("edit")) return schematicForm(await api("GET", `/schematics/${encodeURIComponent(param("edit"))}`));
  if (new URLSearchParams(location.search).has("new")) return schematicForm(null);
  const [schematics, settings] = await Promise.all([api("GET", "/schematics"), api("GET", "/settings")]);
  const rows = schematics.map((schematic) => h(
    "tr",
    { "data-schematic": schematic.id },
    h(
      "th",
      { scope: "row", "data-label": "Name" },
      schematic.name,
      schematic.id === settings.default_schematic_id ? h("span", { class: "badge neutral" }, "default") : null,
    ),
    h("td", { "data-label": "Factory id", title: schematic.factory_id }, h("code", {}, `${schematic.factory_id.slice(0, 12)}…`)),
    h("td", { "data-label": "Updated" }, time(schematic.updated_at)),
    h(
      "td",
      { "data-label": "Actions", class: "row-actions" },
      h("a", { class: "button small", href: `/schematics?edit=${encodeURIComponent(schematic.id)}` }, "Edit"),
      actionButton("Delete", async () => {
        if (!confirm(`Delete the schematic ${schematic.name}? Servers bootstrapped with it keep running.`)) return;
        await api("DELETE", `/schematics/${encodeURIComponent(schematic.id)}`);
        flash(`Deleted the schematic ${schematic.name}.`);
        await schematicsPage();
      }, { class: "small danger" }),
    ),
  ));
  render(
    pageHeader("Talos Schematics", h("a", { class: "button primary", href: "/schematics?new" }, "New schematic")),
    h("p", { class: "muted" }, "Image Factory schematics pick the system extensions and kernel arguments of the Talos image a bootstrap writes. The default one is chosen in Settings."),
    schematics.length
      ? table("Talos schematics", ["Name", "Factory id", "Updated", "Actions"], rows)
      : h("p", { class: "card" }, "No schematic yet: bootstraps use the plain Talos image."),
  );
}

function schematicForm(schematic) {
  const form = h(
    "form",
    { class: "card", id: "schematic-form" },
    formIssues(),
    field("Name", h("input", { name: "name", required: true, value: schematic?.name ?? "", autocomplete: "off" })),
    field(
      "Schematic (YAML)",
      h("textarea", { name: "body", class: "code", rows: 14, spellcheck: "false", value: schematic?.body ?? EXAMPLE }),
      "The service adds talos.config=https://<HOST>/config?uuid=${uuid} to customization.extraKernelArgs, replacing any other.",
    ),
    schematic ? h("p", { class: "muted" }, "Factory id ", h("code", {}, schematic.factory_id)) : null,
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "primary" }, schematic ? "Save schematic" : "Create schematic"),
      h("a", { href: "/schematics", class: "button" }, "Cancel"),
    ),
  );
  onSubmit(form, async (data) => {
    const body = { name: data.get("name"), body: data.get("body") };
    if (schematic) {
      await api("PUT", `/schematics/${encodeURIComponent(schematic.id)}`, body);
    } else {
      await api("POST", "/schematics", body);
    }
    location.assign("/schematics");
  });
  render(pageHeader(schematic ? `Edit schematic ${schematic.name}` : "New schematic"), form);
}
