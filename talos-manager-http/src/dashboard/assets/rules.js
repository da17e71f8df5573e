// The label and taint rules page: list, create, edit, delete.

import { api } from "./api.js";
import { actionButton, field, flash, formIssues, h, onSubmit, pageHeader, param, render, table } from "./ui.js";

/** The rules page; `?new` opens the create form, `?edit=<id>` the edit form. */
export async function rulesPage() {
  if (param("edit")) return ruleForm(await api("GET", `/label-taint-rules/${encodeURIComponent(param("edit"))}`));
  if (new URLSearchParams(location.search).has("new")) return ruleForm(null);
  const rules = await api("GET", "/label-taint-rules");
  const rows = rules.map((rule) => h(
    "tr",
    { "data-rule": rule.id },
    h("th", { scope: "row", "data-label": "Name contains" }, h("code", {}, rule.match)),
    h("td", { "data-label": "Labels" }, rule.labels ? h("code", {}, rule.labels) : h("span", { class: "muted" }, "–")),
    h("td", { "data-label": "Taints" }, rule.taints ? h("code", {}, rule.taints) : h("span", { class: "muted" }, "–")),
    h(
      "td",
      { "data-label": "Actions", class: "row-actions" },
      h("a", { class: "button small", href: `/label-taint-rules?edit=${encodeURIComponent(rule.id)}` }, "Edit"),
      actionButton("Delete", async () => {
        if (!confirm(`Delete the rule for names containing “${rule.match}”?`)) return;
        await api("DELETE", `/label-taint-rules/${encodeURIComponent(rule.id)}`);
        flash("Deleted the rule.");
        await rulesPage();
      }, { class: "small danger" }),
    ),
  ));
  render(
    pageHeader("Label & Taint Rules", h("a", { class: "button primary", href: "/label-taint-rules?new" }, "New rule")),
    h("p", { class: "muted" }, "Nodes whose name contains a rule's text get its labels and taints once they join their cluster."),
    rules.length ? table("Label and taint rules", ["Name contains", "Labels", "Taints", "Actions"], rows) : h("p", { class: "card" }, "No rule yet."),
  );
}

function ruleForm(rule) {
  const form = h(
    "form",
    { class: "card", id: "rule-form" },
    formIssues(),
    field("Name contains", h("input", { name: "match", required: true, value: rule?.match ?? "", autocomplete: "off" }), "The rule applies to servers whose name contains this text, e.g. database."),
    field("Labels", h("input", { name: "labels", class: "code", value: rule?.labels ?? "", autocomplete: "off", placeholder: "key=value,key=value" })),
    field("Taints", h("input", { name: "taints", class: "code", value: rule?.taints ?? "", autocomplete: "off", placeholder: "key=value:NoSchedule" }), "Effect: NoSchedule, PreferNoSchedule or NoExecute."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, rule ? "Save rule" : "Create rule"), h("a", { href: "/label-taint-rules", class: "button" }, "Cancel")),
  );
  onSubmit(form, async (data) => {
    const body = { match: data.get("match"), labels: data.get("labels"), taints: data.get("taints") };
    if (rule) {
      await api("PUT", `/label-taint-rules/${encodeURIComponent(rule.id)}`, body);
    } else {
      await api("POST", "/label-taint-rules", body);
    }
    location.assign("/label-taint-rules");
  });
  render(pageHeader(rule ? "Edit rule" : "New rule"), form);
}
