// The servers page (status, machine configs) and the configure-server form.

import { ApiError, api, download, followJobLog, followServerEvents } from "./api.js";
import { showReset, showServerReboot, showServerUpgrade, talosVersionSelect } from "./lifecycle.js";
import {
  actionButton, ago, copyBlock, copyText, field, flash, flashError, formIssues, formValues, h, onSubmit, pageHeader, param,
  render, showDialog, table,
} from "./ui.js";

/**
 * How often the servers page polls while its live stream is down, and refreshes the "… ago"
 * texts, in milliseconds.
 */
const REFRESH_MS = 10000;

/**
 * The status indicator, with the original's meaning: configured (served a config more recently
 * than its last unanswered request), also confirmed in the cluster by the label and taint job,
 * configured but its machine config since removed, waiting (asked for a config within the last
 * minute and has none), or last seen some time ago.
 */
export function serverStatus(server, hasMachineConfig, now = Date.now()) {
  const requested = server.last_request_for_configuration_at ? Date.parse(server.last_request_for_configuration_at) : null;
  const configured = server.last_configured_at ? Date.parse(server.last_configured_at) : null;
  if (configured !== null && (requested === null || configured >= requested)) {
    if (!hasMachineConfig) return { kind: "unbound", text: "Configured, machine config removed" };
    if (server.label_and_taint_job_completed_at) return { kind: "in-cluster", text: "Configured, in cluster" };
    return { kind: "configured", text: "Configured" };
  }
  if (requested !== null && now - requested < 60000) {
    return { kind: "waiting", text: `Waiting for config (asked ${ago(server.last_request_for_configuration_at, now)})` };
  }
  if (requested !== null) return { kind: "seen", text: `Last seen ${ago(server.last_request_for_configuration_at, now)}` };
  return { kind: "never", text: "Not seen yet" };
}

/** A Robot product name without the vendor noise ("Dell PowerEdge R6515" → "R6515"). */
function shortProduct(product) {
  return (product || "").replace(/^(Dell|DELL)\s+(PowerEdge\s+)?/, "").trim();
}

/** "953.9 GB" for a size in bytes. */
function size(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A disk as the bootstrap dialog lists it: path, WWID, size, model, partitions, RAID. */
function diskLabel(disk) {
  const parts = [disk.path, disk.wwid, size(disk.size_bytes), disk.model].filter(Boolean);
  if (disk.partitions) parts.push(`${disk.partitions} partition${disk.partitions === 1 ? "" : "s"}`);
  if (disk.raid_arrays.length) parts.push(`RAID member of ${disk.raid_arrays.join(", ")}`);
  return parts.join(" · ");
}

/**
 * The bootstrap dialog: target disk (RAID members disabled, a warning when it holds partitions),
 * Talos version and schematic, the dry-run plan on request, then the job, followed on its page.
 */
async function showBootstrap(server) {
  const [version, schematics, settings] = await Promise.all([
    talosVersionSelect(),
    api("GET", "/schematics"),
    api("GET", "/settings"),
  ]);
  const disk = h(
    "select",
    { name: "disk" },
    h("option", { value: "" }, "The first disk outside a RAID (decided in rescue)"),
    server.disks.map((item) => h("option", { value: item.wwid || item.path, disabled: item.raid_arrays.length > 0 }, diskLabel(item))),
  );
  const firstFree = server.disks.find((item) => item.raid_arrays.length === 0);
  if (firstFree) disk.value = firstFree.wwid || firstFree.path;
  const chosenSchematic = server.schematic_id || settings.default_schematic_id || "";
  const schematic = h(
    "select",
    { name: "schematic" },
    h("option", { value: "" }, "None: the plain Talos image"),
    schematics.map((item) => h("option", { value: item.id, selected: item.id === chosenSchematic }, item.name)),
  );
  const warning = h("p", { class: "warning", role: "status" });
  const showWarning = () => {
    const chosen = server.disks.find((item) => (item.wwid || item.path) === disk.value);
    warning.textContent = chosen?.partitions
      ? `${chosen.path} holds ${chosen.partitions} partition${chosen.partitions === 1 ? "" : "s"}: the bootstrap erases them.`
      : "";
    warning.hidden = !warning.textContent;
  };
  disk.addEventListener("change", showWarning);
  showWarning();
  const plan = h("div", { id: "bootstrap-plan" });
  const force = h("input", { type: "checkbox", name: "force" });
  // A live node: served its machine config or labelled in its cluster (the API refuses it
  // without force).
  const live = Boolean(server.last_configured_at || server.label_and_taint_job_completed_at);
  const choices = () => {
    const body = {};
    for (const control of [disk, version, schematic]) if (control.value) body[control.name] = control.value;
    if (force.checked) body.force = true;
    return body;
  };
  const form = h(
    "form",
    { id: "bootstrap-form" },
    formIssues(),
    server.disks.length
      ? null
      : h("p", { class: "muted" }, "No disks are known yet: the server has not been probed in rescue. The bootstrap enters rescue when needed and picks the first disk outside a RAID."),
    field("Target disk", disk),
    warning,
    field("Talos version", version),
    field("Schematic", schematic),
    live
      ? h("p", { class: "warning", id: "bootstrap-live" }, `${server.name} runs Talos with its machine config: a bootstrap erases a running node. Reset it first (it leaves its cluster cleanly), or force.`)
      : null,
    field(
      "Force",
      force,
      "Bootstrap even a running node (served its config or in its cluster): its disk is erased without draining it or leaving etcd. Without it, such a bootstrap is refused. A control plane is refused even when forced if etcd would lose its last member or its majority: reset it first.",
    ),
    h(
      "div",
      { class: "form-actions" },
      actionButton("Show the plan", async () => {
        const query = new URLSearchParams(choices()).toString();
        try {
          const view = await api("GET", `/servers/${encodeURIComponent(server.id)}/bootstrap-plan${query ? `?${query}` : ""}`);
          plan.replaceChildren(copyBlock(view.text, "plan"));
        } catch (error) {
          plan.replaceChildren(h("p", { class: "error-text" }, error.message));
        }
      }, { id: "show-plan" }),
      h("button", { type: "submit", class: "primary danger-primary" }, "Start bootstrap"),
    ),
    plan,
  );
  onSubmit(form, async () => {
    const forced = force.checked ? " Forced: a running node is erased." : "";
    if (!confirm(`Bootstrap ${server.name}? It reboots into rescue if needed and overwrites the target disk with Talos.${forced}`)) return;
    const job = await api("POST", `/servers/${encodeURIComponent(server.id)}/bootstrap`, choices());
    location.assign(`/jobs?id=${encodeURIComponent(job.id)}`);
  });
  showDialog(`Bootstrap ${server.name}`, form);
}

/** Puts a server into rescue through its provider (a reboot), after asking. */
async function enterRescue(server, reload) {
  if (!confirm(`Reboot ${server.name} into the rescue system? Whatever runs on it stops.`)) return;
  await api("POST", `/servers/${encodeURIComponent(server.id)}/rescue`);
  flash(`${server.name} is rebooting into rescue; a sync shows when it answers.`);
  await reload();
}

/** Renames a server at its provider, after asking for the name. */
async function rename(server, reload) {
  const name = prompt(`New name for ${server.name} (also changed at Hetzner):`, server.name);
  if (!name || name === server.name) return;
  await api("PATCH", `/servers/${encodeURIComponent(server.id)}`, { name });
  flash(`Renamed ${server.name} to ${name}.`);
  await reload();
}

/** The cluster of a server as a select that saves when changed. */
function clusterSelect(server, clusters, reload) {
  const select = h(
    "select",
    { name: "cluster_id", class: "inline", "aria-label": `Cluster of ${server.name}` },
    h("option", { value: "" }, "–"),
    clusters.map((cluster) => h("option", { value: cluster.id, selected: cluster.id === server.cluster_id }, cluster.name)),
  );
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await api("PATCH", `/servers/${encodeURIComponent(server.id)}`, { cluster_id: select.value || null });
      flash(select.value ? `${server.name} is in ${select.selectedOptions[0].textContent} now.` : `${server.name} is in no cluster now.`);
      await reload();
    } catch (error) {
      flashError(error);
      select.value = server.cluster_id ?? "";
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

/** Actions that appear in each server's row. */
function serverActions(server, machineConfig, reload) {
  const actions = [];
  if (machineConfig) {
    actions.push(actionButton("Download YAML", () => download(`/servers/${encodeURIComponent(server.id)}/machine-config.yaml`, `${machineConfig.hostname}.yaml`), { class: "small" }));
    actions.push(actionButton("Remove", async () => {
      if (!confirm(`Remove the machine config of ${server.name}? The node keeps running; it gets no config until it is configured again.`)) return;
      await api("DELETE", `/machine-configs/${encodeURIComponent(machineConfig.id)}`);
      flash(`Removed the machine config of ${server.name}.`);
      await reload();
    }, { class: "small danger" }));
    actions.push(actionButton("Reboot…", () => showServerReboot(server), { class: "small" }));
    actions.push(actionButton("Upgrade…", () => showServerUpgrade(server), { class: "small" }));
    actions.push(actionButton("Reset…", () => showReset(server), { class: "small danger" }));
  } else {
    actions.push(h("a", { class: "button small primary", href: `/configure?server_id=${encodeURIComponent(server.id)}` }, "Configure"));
  }
  actions.push(actionButton("Bootstrap…", () => showBootstrap(server), { class: "small" }));
  actions.push(actionButton("Rescue", () => enterRescue(server, reload), { class: "small" }));
  actions.push(actionButton("Rename…", () => rename(server, reload), { class: "small" }));
  return actions;
}

function copyButton(text) {
  if (!text) return h("span", { class: "muted" }, "–");
  const button = h("button", { type: "button", class: "copy", title: "Copy to the clipboard", "aria-label": `Copy ${text}` }, h("code", {}, text));
  button.addEventListener("click", async () => {
    try {
      await copyText(text);
      flash(`Copied ${text}.`);
    } catch {
      flash(`Could not copy ${text}.`, "error");
    }
  });
  return button;
}

/** Waits `ms` milliseconds. */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether two API values are the same (both come from the same view types). */
function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** A link to a sync job's log saying how it stands. */
function syncLink(jobId, text) {
  return h("a", { href: `/jobs?id=${encodeURIComponent(jobId)}` }, text);
}

/**
 * The servers page. It loads the servers, their machine configs and jobs once, then follows
 * `/servers/events` and updates the rows that changed in place; while the stream is down it
 * polls every REFRESH_MS and tries the stream again.
 */
export async function serversPage() {
  const container = h("div", { id: "servers" });
  const liveState = h("span", { id: "live-state", class: "live-state", role: "status" });
  const syncState = h("span", { id: "sync-state", class: "muted", "aria-live": "polite" });
  const controller = new AbortController();
  window.addEventListener("pagehide", () => controller.abort(), { once: true });
  // A sync's end shows here as it happens; the servers it adds arrive as server events.
  let followedSync = null;
  const followSync = (jobId) => {
    if (followedSync === jobId) return;
    followedSync = jobId;
    followJobLog(jobId, (event) => {
      if (event.job_status) syncState.replaceChildren(syncLink(jobId, `last sync ${event.job_status} just now`));
    }, controller.signal).catch(() => {});
  };
  const syncButton = actionButton("Sync with Hetzner", async () => {
    const job = await api("POST", "/servers/sync");
    flash("Sync queued: servers are fetched from every provider account.");
    syncState.replaceChildren(syncLink(job.id, `sync #${job.id} ${job.status}`));
    followSync(job.id);
  }, { id: "sync", class: "primary" });
  render(pageHeader("Servers", liveState, syncState, syncButton), container);

  // What the table shows, by server id.
  const model = {
    servers: new Map(),
    machineConfigs: new Map(),
    jobs: new Map(),
    configs: [],
    clusters: [],
    accounts: [],
  };
  const shown = () => document.body.contains(container);
  let reload;
  const renderAll = () => container.replaceChildren(serversTable(model, reload));
  reload = async () => {
    const [servers, machineConfigs, configs, clusters, jobs, accounts] = await Promise.all([
      api("GET", "/servers"),
      api("GET", "/machine-configs"),
      api("GET", "/configs"),
      api("GET", "/clusters"),
      api("GET", "/jobs"),
      api("GET", "/provider-accounts"),
    ]);
    const sync = jobs.filter((job) => job.kind === "sync").sort((a, b) => Number(b.id) - Number(a.id))[0];
    if (sync && ["queued", "running"].includes(sync.status)) {
      syncState.replaceChildren(syncLink(sync.id, `sync #${sync.id} ${sync.status}`));
      followSync(sync.id);
    } else if (sync && followedSync !== sync.id) {
      syncState.replaceChildren(syncLink(sync.id, [`last sync ${sync.status}`, sync.finished_at ? ` ${ago(sync.finished_at)}` : ""].join("")));
    }
    model.servers = new Map(servers.map((server) => [server.id, server]));
    model.machineConfigs = new Map(machineConfigs.map((machineConfig) => [machineConfig.server_id, machineConfig]));
    model.jobs = latestJobs(jobs);
    Object.assign(model, { configs, clusters, accounts });
    renderAll();
  };

  const applyEvent = (event) => {
    if (!shown()) {
      controller.abort();
      return;
    }
    const id = event.server_id;
    const before = model.servers.get(id);
    if (!event.server) {
      if (!before) return;
      model.servers.delete(id);
      model.machineConfigs.delete(id);
      model.jobs.delete(id);
      renderAll();
      return;
    }
    if (before && same(before, event.server) && same(model.machineConfigs.get(id), event.machine_config) && same(model.jobs.get(id), event.latest_job)) {
      return;
    }
    const clusterKnown = !event.server.cluster_id || model.clusters.some((cluster) => cluster.id === event.server.cluster_id);
    const configKnown = !event.machine_config || model.configs.some((config) => config.id === event.machine_config.config_id);
    if (!clusterKnown || !configKnown) {
      // A cluster or config made since the page loaded: fetch the lists again.
      reload().catch(() => {});
      return;
    }
    model.servers.set(id, event.server);
    if (event.machine_config) model.machineConfigs.set(id, event.machine_config);
    else model.machineConfigs.delete(id);
    if (event.latest_job) model.jobs.set(id, event.latest_job);
    else model.jobs.delete(id);
    const row = container.querySelector(`tr[data-server="${CSS.escape(id)}"]`);
    const moved = !before || before.name !== event.server.name || before.cluster_id !== event.server.cluster_id;
    if (row && !moved) row.replaceWith(serverRow(event.server, model, reload, Date.now()));
    else renderAll();
  };
  const follow = async () => {
    while (shown() && !controller.signal.aborted) {
      try {
        await followServerEvents(applyEvent, controller.signal, () => {
          liveState.textContent = "Live";
          liveState.className = "live-state on";
        });
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return;
      }
      if (!shown() || controller.signal.aborted) return;
      liveState.textContent = `Refreshing every ${REFRESH_MS / 1000} s`;
      liveState.className = "live-state off";
      await sleep(REFRESH_MS);
      if (!shown()) return;
      await reload().catch(() => {});
    }
  };

  await reload();
  follow();
  // "Asked 20 s ago" and "last seen 3 min ago" age without any change to the server.
  const timer = setInterval(() => {
    if (!shown()) {
      clearInterval(timer);
      return;
    }
    const now = Date.now();
    for (const row of container.querySelectorAll("tr[data-server]")) {
      const server = model.servers.get(row.dataset.server);
      if (server) row.querySelector("td[data-label=Status]")?.replaceWith(statusCell(server, model, now));
    }
  }, REFRESH_MS);
}

/** Each server's most recent job. */
function latestJobs(jobs) {
  const latest = new Map();
  for (const job of jobs) {
    if (!job.server_id) continue;
    const known = latest.get(job.server_id);
    if (!known || Number(job.id) > Number(known.id)) latest.set(job.server_id, job);
  }
  return latest;
}

/** A server's job while it runs, or when it failed: a link to its log. */
function jobState(job) {
  if (!job || !["queued", "running", "failed"].includes(job.status)) return null;
  const text = job.status === "failed" ? `${job.kind} failed: ${job.last_error ?? "see its log"}` : `${job.kind} ${job.status}`;
  return h("a", { class: `job-state ${job.status}`, href: `/jobs?id=${encodeURIComponent(job.id)}` }, text);
}

/** The status cell of a server's row: the indicator, its state on the way to the cluster, its job. */
function statusCell(server, model, now) {
  const status = serverStatus(server, model.machineConfigs.has(server.id), now);
  return h(
    "td",
    { "data-label": "Status" },
    h("span", { class: `status ${status.kind}` }, h("span", { class: "dot", "aria-hidden": "true" }), status.text),
    server.state && server.state !== "unknown" ? h("span", { class: "server-state" }, server.state) : null,
    server.missing_since
      ? h(
        "span",
        { class: "server-missing", title: `Not listed by its provider account for ${server.missing_syncs} sync(s); kept until sync has missed it long enough` },
        `Missing at provider since ${ago(server.missing_since, now)}`,
      )
      : null,
    server.node_name_mismatch ? h("span", { class: "server-state" }, `name mismatch: ${server.node_name_mismatch}`) : null,
    jobState(model.jobs.get(server.id)),
  );
}

/** A server's row. */
function serverRow(server, model, reload, now) {
  const machineConfig = model.machineConfigs.get(server.id);
  const configName = model.configs.find((config) => config.id === machineConfig?.config_id)?.name;
  return h(
    "tr",
    { "data-server": server.id },
    statusCell(server, model, now),
    h("th", { scope: "row", "data-label": "Name" }, server.name, server.cancelled ? h("span", { class: "badge" }, "cancelled") : null),
    h("td", { "data-label": "IP" }, copyButton(server.ipv4 || server.ipv6)),
    h("td", { "data-label": "Product", title: server.product }, shortProduct(server.product)),
    h("td", { "data-label": "Cluster" }, clusterSelect(server, model.clusters, reload)),
    h("td", { "data-label": "Config" }, machineConfig ? configName ?? machineConfig.config_id : h("span", { class: "muted" }, "–")),
    h("td", { "data-label": "Actions", class: "row-actions" }, serverActions(server, machineConfig, reload)),
  );
}

function serversTable(model, reload) {
  if (model.servers.size === 0) {
    return h(
      "section",
      { class: "card onboarding", "aria-labelledby": "onboarding-title" },
      h("h2", { id: "onboarding-title" }, "No servers yet"),
      model.accounts.length === 0
        ? h("p", {}, "Servers appear here once they are synced from your Hetzner accounts: first ", h("a", { href: "/settings#provider-accounts" }, "add a provider account"), " (a Robot webservice user or a Cloud API token), then press Sync.")
        : h("p", {}, "Press Sync to fetch the servers of your provider accounts. Meanwhile, get ready to configure them:"),
      h(
        "ol",
        {},
        h("li", {}, h("a", { href: "/clusters" }, "Create a cluster"), " (its endpoint and secrets)."),
        h("li", {}, h("a", { href: "/configs" }, "Create a config"), " (Talos and Kubernetes versions, patches)."),
        h("li", {}, "Then press Configure next to a server; Talos nodes fetch their config from ", h("code", {}, "/config"), "."),
      ),
    );
  }
  const clusterName = new Map(model.clusters.map((cluster) => [cluster.id, cluster.name]));
  const sorted = [...model.servers.values()].sort((a, b) => {
    const clusterA = clusterName.get(a.cluster_id) ?? "\uffff";
    const clusterB = clusterName.get(b.cluster_id) ?? "\uffff";
    return clusterA.localeCompare(clusterB) || a.name.localeCompare(b.name, undefined, { numeric: true });
  });
  const now = Date.now();
  const rows = sorted.map((server) => serverRow(server, model, reload, now));
  return table("Servers, by cluster then name", ["Status", "Name", "IP", "Product", "Cluster", "Config", "Actions"], rows);
}

/**
 * The original's private IP convention: `10.0.0.N` for control-plane names, `10.0.1.N` worker,
 * `10.0.2.N` database, `10.0.7.N` standby, N the name's trailing number.
 */
export function defaultPrivateIp(name) {
  const number = /(\d+)$/.exec(name || "");
  if (!number) return "";
  const subnets = [["control-plane", 0], ["worker", 1], ["database", 2], ["standby", 7]];
  const match = subnets.find(([word]) => name.includes(word));
  return match ? `10.0.${match[1]}.${Number(number[1])}` : "";
}

/** The configure-server page: a machine config for `?server_id=`. */
export async function configurePage() {
  const serverId = param("server_id");
  if (!serverId) {
    location.replace("/servers");
    return;
  }
  const [server, configs] = await Promise.all([
    api("GET", `/servers/${encodeURIComponent(serverId)}`),
    api("GET", "/configs"),
  ]);
  const configSelect = h(
    "select",
    { name: "config_id", required: true },
    h("option", { value: "" }, "Choose a config…"),
    configs.map((config) => h("option", { value: config.id }, config.name)),
  );
  if (configs.length === 1) configSelect.value = configs[0].id;
  const installDisk = server.bootstrap_disk || "/dev/sda";
  const form = h(
    "form",
    { class: "card", id: "configure-form" },
    formIssues(),
    field("Hostname", h("input", { name: "hostname", value: server.name, autocomplete: "off" }), "Letters and dashes ending in a number, e.g. worker-3."),
    field("Private IP", h("input", { name: "private_ip", value: defaultPrivateIp(server.name), autocomplete: "off", inputmode: "decimal" }), "10.0.x.N with N the hostname's number; left empty, the service picks it from the name."),
    field("Install disk", h("input", { name: "install_disk", value: installDisk, readonly: Boolean(server.bootstrap_disk), autocomplete: "off" }), server.bootstrap_disk ? "The disk Talos was bootstrapped on." : "The disk Talos installs to."),
    field("Disk for the EPHEMERAL volume (optional)", h("input", { name: "ephemeral_disk_identifier", placeholder: "wwid:… or uuid:…", autocomplete: "off" }), "Another disk by WWID, or a RAID array by its md UUID."),
    field("Config", configSelect, configs.length ? null : h("span", {}, "No config yet: ", h("a", { href: "/configs?new" }, "create one"), ".")),
    field("Already configured", h("input", { type: "checkbox", name: "already_configured" }), "The node was configured outside talos-manager: mark it configured now."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Save machine config"), h("a", { href: "/servers", class: "button" }, "Cancel")),
  );
  onSubmit(form, async (data) => {
    const body = {
      server_id: server.id,
      ...formValues(data, ["hostname", "private_ip", "install_disk", "ephemeral_disk_identifier", "config_id"]),
      already_configured: data.get("already_configured") === "on",
    };
    await api("POST", "/machine-configs", body);
    location.assign("/servers");
  });
  render(pageHeader(`Configure ${server.name}`), h("p", { class: "muted" }, `${server.id} · ${server.product} · ${server.ipv4 || ""}`), form);
}
