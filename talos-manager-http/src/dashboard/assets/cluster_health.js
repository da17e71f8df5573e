// Cluster health on the clusters page: a cell per cluster (status badge, etcd x/y, nodes ready
// x/y, earliest certificate expiry) filled in once its check answers, and the detail page
// (`/clusters?health=<id>`): reasons, etcd members, nodes, missing servers, certificates.

import { api } from "./api.js";
import { h, pageHeader, render, table, time } from "./ui.js";

const LABELS = {
  healthy: "healthy",
  degraded: "degraded",
  unreachable: "unreachable",
  not_bootstrapped: "not bootstrapped",
};

function path(id) {
  return `/clusters/${encodeURIComponent(id)}/health`;
}

/** The status badge of a health check. */
export function healthBadge(status) {
  return h("span", { class: `health-badge health-${status}`, "data-health-status": status }, LABELS[status] ?? status);
}

/** A table cell that shows the cluster's health once its check answers (the checks run in parallel). */
export function healthCell(cluster) {
  const cell = h("td", { "data-label": "Health", "data-health": cluster.id }, h("span", { class: "muted" }, "checking…"));
  api("GET", path(cluster.id)).then(
    (health) => cell.replaceChildren(
      h(
        "a",
        { href: `/clusters?health=${encodeURIComponent(cluster.id)}`, class: "health-summary" },
        healthBadge(health.status),
        h("span", { class: "health-etcd" }, ` etcd ${health.etcd_members_healthy}/${health.etcd_members.length}`),
        h("span", { class: "health-nodes" }, ` · nodes ${health.nodes_ready}/${health.nodes_total}`),
      ),
      h("div", { class: "hint health-expiry" }, "expires ", time(health.earliest_expiry)),
    ),
    (error) => cell.replaceChildren(h("span", { class: "danger" }, `check failed: ${error?.message || error}`)),
  );
  return cell;
}

function yes(value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "–");
  return value ? "yes" : h("strong", { class: "danger" }, "no");
}

/** The health detail page of one cluster. */
export async function clusterHealthPage(id) {
  const health = await api("GET", path(id));
  const reasons = health.reasons.length
    ? h("ul", { class: "card health-reasons" }, health.reasons.map((reason) => h("li", {}, reason)))
    : h("p", { class: "card health-reasons" }, "Nothing to report: every check passed.");
  const members = health.etcd_members.map((member) => h(
    "tr",
    { "data-member": member.name },
    h("th", { scope: "row", "data-label": "Member" }, member.name, member.leader ? h("span", { class: "badge neutral" }, "leader") : null),
    h("td", { "data-label": "Id" }, h("code", {}, member.id)),
    h("td", { "data-label": "Healthy" }, yes(member.healthy)),
    h("td", { "data-label": "Problem" }, member.problem ?? h("span", { class: "muted" }, "–")),
  ));
  const nodes = health.nodes.map((node) => h(
    "tr",
    { "data-node": node.name },
    h("th", { scope: "row", "data-label": "Node" }, node.name),
    h("td", { "data-label": "Server" }, node.server ?? h("span", { class: "muted" }, "not configured here")),
    h("td", { "data-label": "Ready" }, yes(node.ready)),
    h("td", { "data-label": "Talos" }, node.talos_version ?? (node.talos_error ? h("span", { class: "danger", title: node.talos_error }, "no answer") : h("span", { class: "muted" }, "–"))),
    h("td", { "data-label": "Kubelet" }, node.kubelet_version ?? h("span", { class: "muted" }, "–")),
  ));
  const certificates = health.certificates.map((cert) => h(
    "tr",
    { "data-certificate": cert.name },
    h("th", { scope: "row", "data-label": "Certificate" }, cert.description),
    h("td", { "data-label": "Expires" }, time(cert.not_after)),
  ));
  render(
    pageHeader(`Health of ${health.cluster}`, h("a", { class: "button", href: "/clusters" }, "Back to clusters")),
    h(
      "p",
      { class: "card health-overview" },
      healthBadge(health.status),
      ` Kubernetes API: ${health.kubernetes_reachable ? health.kubernetes_version : "no answer"}`,
      ` · etcd ${health.etcd_members_healthy}/${health.etcd_members.length}`,
      health.etcd_leader ? `, leader ${health.etcd_leader}` : ", no leader",
      ` · nodes ready ${health.nodes_ready}/${health.nodes_total} · checked `,
      time(health.checked_at),
    ),
    reasons,
    h("h2", {}, "etcd members"),
    members.length ? table("etcd members", ["Member", "Id", "Healthy", "Problem"], members) : h("p", { class: "muted" }, "No control plane's etcd answered."),
    h("h2", {}, "Nodes"),
    table("Nodes", ["Node", "Server", "Ready", "Talos", "Kubelet"], nodes),
    health.missing.length
      ? [h("h2", {}, "Missing servers"), h("ul", { class: "health-missing" }, health.missing.map((missing) => h("li", {}, `${missing.server}: not ${missing.missing_from === "etcd" ? "an etcd member" : "a Kubernetes node"}`)))]
      : null,
    h("h2", {}, "Certificates"),
    table("Certificates", ["Certificate", "Expires"], certificates),
  );
}
