// Changes to running nodes, shared by the servers and clusters pages: the reset dialog of a
// server, the upgrade and reboot dialogs of a server or a whole cluster, and a new cluster's
// etcd bootstrap. Each queues a job (one per cluster at a time) and opens its page, which
// follows the log.

import { api, apiText } from "./api.js";
import { actionButton, copyBlock, field, formIssues, h, onSubmit, showDialog } from "./ui.js";

/** The reset profiles of `POST /servers/{id}/reset`, each with what happens in one sentence. */
const RESET_PROFILES = [
  {
    value: "maintenance",
    label: "Back to maintenance",
    text: "Wipes the STATE and EPHEMERAL partitions (from Talos 1.14 also the ETCD, CRI, KUBELET and LOG volumes) and reboots: Talos stays installed and comes back in maintenance mode, asking for a config.",
    confirm: "back to maintenance",
  },
  {
    value: "wipe",
    label: "Wipe",
    text: "Wipes the whole system disk and powers the server off: nothing bootable is left on it.",
    confirm: "and wipe its whole system disk",
  },
  {
    value: "wipe_to_rescue",
    label: "Wipe to rescue",
    text: "Wipes the whole system disk, then boots the server into the rescue system, ready for a new bootstrap.",
    confirm: "wipe its whole system disk and boot it into rescue",
  },
];

/** Opens the page of a job that was just queued; it follows the job's log. */
function openJob(job) {
  location.assign(`/jobs?id=${encodeURIComponent(job.id)}`);
}

/**
 * A select of the Talos versions: the settings' default (chosen), every release talos-manager
 * generates configs for (`/talos-versions/supported`, the engine's contract list), then the
 * others the Image Factory builds; the first two even when the factory is unreachable.
 */
export async function talosVersionSelect() {
  const [versions, supported, settings] = await Promise.all([
    api("GET", "/talos-versions").catch(() => ({ versions: [] })),
    api("GET", "/talos-versions/supported").catch(() => ({ versions: [] })),
    api("GET", "/settings"),
  ]);
  const list = [...new Set([settings.talos_version, ...supported.versions.map((version) => version.release), ...versions.versions])];
  return h("select", { name: "talos_version" }, list.map((item) => h("option", { value: item, selected: item === settings.talos_version }, item)));
}

/**
 * The reset dialog of a configured server: the profile, `force`, then a confirmation step that
 * names the server before anything is sent. API errors (409 while the cluster is busy, 422 for
 * a server that is not a node) show in the dialog.
 */
export function showReset(server) {
  const profiles = h(
    "fieldset",
    { class: "choices", "data-field": "profile" },
    h("legend", {}, "What to wipe"),
    RESET_PROFILES.map((profile, index) => {
      const id = `reset-profile-${profile.value}`;
      return h(
        "div",
        { class: "choice" },
        h("input", { type: "radio", name: "profile", value: profile.value, id, checked: index === 0, "aria-describedby": `${id}-text` }),
        h("label", { for: id }, profile.label),
        h("p", { class: "hint", id: `${id}-text` }, profile.text),
      );
    }),
    h("ul", { class: "issues" }),
  );
  const force = h("input", { type: "checkbox", name: "force" });
  const choices = h(
    "div",
    { id: "reset-choices" },
    profiles,
    field("Force", force, "Reset even if it removes etcd's last member or its majority: that destroys the cluster's state. Without it, such a reset is refused."),
    h("p", { class: "muted" }, "In every case the node leaves the cluster (its Kubernetes node and etcd member are removed) and its machine config is removed here."),
    h("div", { class: "form-actions" }, h("button", { type: "button", id: "reset-continue", class: "primary" }, "Continue…")),
  );
  const question = h("p", { class: "warning", id: "reset-question" });
  const back = h("button", { type: "button" }, "Back");
  const confirmStep = h(
    "div",
    { id: "reset-confirm", hidden: true },
    question,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary danger-primary" }, `Reset ${server.name}`), back),
  );
  const form = h("form", { id: "reset-form" }, formIssues(), choices, confirmStep);
  const chosen = () => RESET_PROFILES.find((profile) => profile.value === new FormData(form).get("profile")) ?? RESET_PROFILES[0];
  const showConfirm = () => {
    const profile = chosen();
    question.replaceChildren(
      h("strong", {}, `Reset ${server.name} (${server.id}${server.ipv4 ? `, ${server.ipv4}` : ""}) ${profile.confirm}?`),
      " ",
      profile.text,
      force.checked ? h("span", { class: "error-text" }, " Forced: etcd's last member or majority may be removed, which destroys the cluster's state.") : null,
    );
    choices.hidden = true;
    confirmStep.hidden = false;
    confirmStep.querySelector("button[type=submit]").focus();
  };
  choices.querySelector("#reset-continue").addEventListener("click", showConfirm);
  back.addEventListener("click", () => {
    confirmStep.hidden = true;
    choices.hidden = false;
  });
  onSubmit(form, async () => {
    // Enter in a field submits the form: it still asks first.
    if (confirmStep.hidden) {
      showConfirm();
      return;
    }
    const job = await api("POST", `/servers/${encodeURIComponent(server.id)}/reset`, { profile: chosen().value, force: force.checked });
    openJob(job);
  });
  return showDialog(`Reset ${server.name}`, form);
}

/** The manual alternative under a dialog's button: the service's runbook, ready to copy. */
function runbookSection(block) {
  return h(
    "section",
    { class: "runbook", "aria-label": "Manual commands" },
    h("h3", {}, "Or run it yourself"),
    h("p", { class: "muted" }, "Run these commands from a machine with talosctl, kubectl and the cluster's talosconfig and kubeconfig."),
    block,
  );
}

/** What a rolling upgrade or reboot does to each node, for the dialogs. */
function rollingText(action, many) {
  const what = action === "upgrade" ? "upgraded to the installer of its schematic" : "rebooted";
  const node = many ? "Control planes first, one node at a time: each node is" : "The node is";
  return `${node} drained (PodDisruptionBudgets respected), ${what}, waited for until it is Ready, then uncordoned.`;
}

/**
 * The reboot dialog of a configured server: a button that queues a `reboot` job for it, and the
 * runbook (`reboot-command`) as the manual alternative.
 */
export async function showServerReboot(server) {
  const runbook = await apiText("GET", `/servers/${encodeURIComponent(server.id)}/reboot-command`);
  const form = h(
    "form",
    { id: "reboot-form" },
    formIssues(),
    h("p", {}, rollingText("reboot", false)),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, `Reboot ${server.name}`)),
  );
  onSubmit(form, async () => {
    if (!confirm(`Reboot ${server.name}? It is drained first; its pods move to other nodes.`)) return;
    openJob(await api("POST", "/reboots", { server_ids: [server.id] }));
  });
  return showDialog(`Reboot: ${server.name}`, form, runbookSection(copyBlock(runbook, "commands")));
}

/**
 * The upgrade dialog of a configured server: a Talos version (the settings' default first), a
 * button that queues an `upgrade` job for it, and the runbook for that version as the manual
 * alternative.
 */
export async function showServerUpgrade(server) {
  const version = await talosVersionSelect();
  const runbookUrl = () => `/servers/${encodeURIComponent(server.id)}/upgrade-command?talos_version=${encodeURIComponent(version.value)}`;
  const block = h("div", { id: "upgrade-runbook" }, copyBlock(await apiText("GET", runbookUrl()), "commands"));
  version.addEventListener("change", async () => {
    try {
      block.replaceChildren(copyBlock(await apiText("GET", runbookUrl()), "commands"));
    } catch (error) {
      block.replaceChildren(h("p", { class: "error-text" }, error.message));
    }
  });
  const form = h(
    "form",
    { id: "upgrade-form" },
    formIssues(),
    field("Talos version", version),
    h("p", {}, rollingText("upgrade", false), " A node already at this version and schematic is left as it is."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, `Upgrade ${server.name}`)),
  );
  onSubmit(form, async () => {
    if (!confirm(`Upgrade ${server.name} to Talos ${version.value}? It is drained first; its pods move to other nodes.`)) return;
    openJob(await api("POST", "/upgrades", { server_ids: [server.id], talos_version: version.value }));
  });
  return showDialog(`Upgrade: ${server.name}`, form, runbookSection(block));
}

/** The upgrade dialog of a cluster: a Talos version, then an `upgrade` job over its nodes. */
export async function showClusterUpgrade(cluster) {
  const version = await talosVersionSelect();
  const form = h(
    "form",
    { id: "cluster-upgrade-form" },
    formIssues(),
    field("Talos version", version),
    h("p", {}, rollingText("upgrade", true), " Nodes already at this version and schematic are skipped."),
    h("p", {}, "It stops at the first failure and leaves the remaining nodes untouched; a restart of the service resumes it."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, `Upgrade ${cluster.name}`)),
  );
  onSubmit(form, async () => {
    if (!confirm(`Upgrade every node of ${cluster.name} to Talos ${version.value}, one at a time?`)) return;
    openJob(await api("POST", "/upgrades", { cluster_id: cluster.id, talos_version: version.value }));
  });
  return showDialog(`Upgrade cluster ${cluster.name}`, form);
}

/** The reboot dialog of a cluster: a `reboot` job over its nodes, one at a time. */
export function showClusterReboot(cluster) {
  const form = h(
    "form",
    { id: "cluster-reboot-form" },
    formIssues(),
    h("p", {}, rollingText("reboot", true)),
    h("p", {}, "It stops at the first failure and leaves the remaining nodes untouched; a restart of the service resumes it."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, `Reboot ${cluster.name}`)),
  );
  onSubmit(form, async () => {
    if (!confirm(`Reboot every node of ${cluster.name}, one at a time?`)) return;
    openJob(await api("POST", "/reboots", { cluster_id: cluster.id }));
  });
  return showDialog(`Reboot cluster ${cluster.name}`, form);
}

/**
 * The "Bootstrap etcd…" button of a cluster that was never bootstrapped (null once
 * `bootstrapped_at` is set): after a question naming the cluster, it queues the
 * `cluster_bootstrap` job and opens its page with the live log. A 409 (bootstrapped already,
 * or a bootstrap queued or running) shows the API's message.
 */
export function clusterBootstrapButton(cluster) {
  if (cluster.bootstrapped_at) return null;
  return actionButton("Bootstrap etcd…", async () => {
    if (!confirm(`Bootstrap etcd of ${cluster.name}? talos-manager calls Talos's Bootstrap on the first control plane that fetched its config, once, then waits for etcd and the Kubernetes API. A cluster is bootstrapped only once; there is no undo.`)) return;
    openJob(await api("POST", `/clusters/${encodeURIComponent(cluster.id)}/bootstrap`));
  }, { class: "small", "data-action": "bootstrap-etcd" });
}
