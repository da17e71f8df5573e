// The clusters page: list, create and edit form, talosconfig and kubeconfig downloads, etcd's
// bootstrap of a new cluster, rolling upgrades and reboots.

import { api, download } from "./api.js";
import { clusterHealthPage, healthCell } from "./cluster_health.js";
import { clusterBootstrapButton, showClusterReboot, showClusterUpgrade } from "./lifecycle.js";
import { actionButton, field, flash, formIssues, formValues, h, onSubmit, pageHeader, param, render, table, time } from "./ui.js";

/**
 * The clusters page; `?new` opens the create form, `?edit=<id>` the edit form, `?health=<id>`
 * the cluster's health.
 */
export async function clustersPage() {
  if (param("health")) return clusterHealthPage(param("health"));
  if (param("edit")) return clusterForm(await api("GET", `/clusters/${encodeURIComponent(param("edit"))}`));
  if (new URLSearchParams(location.search).has("new")) return clusterForm(null);
  const clusters = await api("GET", "/clusters");
  const rows = clusters.map((cluster) => h(
    "tr",
    { "data-cluster": cluster.id },
    h("th", { scope: "row", "data-label": "Name" }, cluster.name),
    h("td", { "data-label": "Endpoint" }, h("code", {}, cluster.endpoint)),
    h("td", { "data-label": "vSwitch" }, cluster.vswitch_id ?? h("span", { class: "muted" }, "–")),
    healthCell(cluster),
    h("td", { "data-label": "Created" }, time(cluster.created_at)),
    h(
      "td",
      { "data-label": "Actions", class: "row-actions" },
      h("a", { class: "button small", href: `/clusters?edit=${encodeURIComponent(cluster.id)}` }, "Edit"),
      actionButton("talosconfig", () => download(`/clusters/${encodeURIComponent(cluster.id)}/talosconfig`, `${cluster.name}-talosconfig`), { class: "small" }),
      actionButton("kubeconfig", () => download(`/clusters/${encodeURIComponent(cluster.id)}/kubeconfig`, `${cluster.name}-kubeconfig`), { class: "small" }),
      clusterBootstrapButton(cluster),
      actionButton("Upgrade…", () => showClusterUpgrade(cluster), { class: "small" }),
      actionButton("Reboot…", () => showClusterReboot(cluster), { class: "small" }),
      actionButton("Delete", async () => {
        if (!confirm(`Delete the cluster ${cluster.name}? Its servers are detached, not deleted; its secrets are gone for good.`)) return;
        await api("DELETE", `/clusters/${encodeURIComponent(cluster.id)}`);
        flash(`Deleted the cluster ${cluster.name}.`);
        await clustersPage();
      }, { class: "small danger" }),
    ),
  ));
  render(
    pageHeader("Clusters", h("a", { class: "button primary", href: "/clusters?new" }, "New cluster")),
    clusters.length
      ? table("Clusters", ["Name", "Endpoint", "vSwitch", "Health", "Created", "Actions"], rows)
      : h("p", { class: "card" }, "No cluster yet. A cluster holds the endpoint and the secrets its nodes share."),
  );
}

function clusterForm(cluster) {
  const secrets = h("textarea", { name: "secrets", class: "code", rows: 12, spellcheck: "false", autocomplete: "off" });
  const secretsField = field(
    cluster ? "Secrets bundle" : "Secrets bundle to import (optional)",
    secrets,
    cluster
      ? "Replacing the secrets of a running cluster locks its nodes out: only paste a bundle to fix a mistake."
      : "Leave empty to generate new secrets; paste `talosctl gen secrets` YAML to manage an existing cluster.",
  );
  let showSecrets = null;
  if (cluster) {
    secretsField.hidden = true;
    showSecrets = actionButton("Show secrets", async () => {
      const withSecrets = await api("GET", `/clusters/${encodeURIComponent(cluster.id)}?include_secrets=true`);
      secrets.value = withSecrets.secrets ?? "";
      secrets.dataset.original = secrets.value;
      secretsField.hidden = false;
      showSecrets.hidden = true;
    });
  }
  const form = h(
    "form",
    { class: "card", id: "cluster-form" },
    formIssues(),
    field("Name", h("input", { name: "name", required: true, value: cluster?.name ?? "", autocomplete: "off" }), "Lowercase letters, digits and dashes."),
    field("Endpoint", h("input", { name: "endpoint", required: true, value: cluster?.endpoint ?? "", placeholder: "https://10.0.0.1:6443", autocomplete: "off" }), "The Kubernetes API endpoint, https://host:port."),
    field("vSwitch id (optional)", h("input", { name: "vswitch_id", value: cluster?.vswitch_id ?? "", autocomplete: "off" }), "The Robot vSwitch whose VLAN fills ${vlan} in patches."),
    showSecrets,
    secretsField,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, cluster ? "Save cluster" : "Create cluster"), h("a", { href: "/clusters", class: "button" }, "Cancel")),
  );
  onSubmit(form, async (data) => {
    const body = formValues(data, ["name", "endpoint", "vswitch_id"]);
    const changedSecrets = cluster ? !secretsField.hidden && secrets.value !== secrets.dataset.original : secrets.value.trim() !== "";
    if (changedSecrets) body.secrets = secrets.value;
    if (cluster) {
      await api("PUT", `/clusters/${encodeURIComponent(cluster.id)}`, body);
    } else {
      await api("POST", "/clusters", body);
    }
    location.assign("/clusters");
  });
  render(pageHeader(cluster ? `Edit cluster ${cluster.name}` : "New cluster"), form);
}
