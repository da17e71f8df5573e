// The configs page: list, and the form with the three patches in monospace text areas.

import { api } from "./api.js";
import { actionButton, field, flash, formIssues, formValues, formWarnings, h, onSubmit, pageHeader, param, render, table, time } from "./ui.js";

/**
 * A new config: the installer image and Kubernetes version are left empty, so the API fills in
 * its defaults (one place: talos-manager-core's store::DEFAULT_TALOS_VERSION and
 * DEFAULT_KUBERNETES_VERSION, the newest version contract's). The hints and the installer
 * choices come from `/talos-versions/supported`, the engine's contract list.
 */
const NEW_CONFIG = {
  install_image: "",
  kubernetes_version: "",
  kubespan: true,
};

const PATCH_HINT = "Strategic merge YAML or a JSON patch. May use ${hostname}, ${private_ip}, ${public_ip} and ${vlan}. The service sets each node's hostname itself (from Talos 1.12 on as a HostnameConfig document; machine.network.hostname is refused there).";

/** The configs page; `?new` opens the create form, `?edit=<id>` the edit form. */
export async function configsPage() {
  if (param("edit")) return configForm(await api("GET", `/configs/${encodeURIComponent(param("edit"))}`));
  if (new URLSearchParams(location.search).has("new")) return configForm(null);
  const configs = await api("GET", "/configs");
  const rows = configs.map((config) => h(
    "tr",
    { "data-config": config.id },
    h("th", { scope: "row", "data-label": "Name" }, config.name),
    h("td", { "data-label": "Installer" }, h("code", {}, config.install_image ?? ""), ...warningsOf(config).map((text) => h("p", { class: "warning" }, text))),
    h("td", { "data-label": "Kubernetes" }, config.kubernetes_version ?? ""),
    h("td", { "data-label": "KubeSpan" }, config.kubespan ? "on" : "off"),
    h("td", { "data-label": "Changed" }, time(config.updated_at)),
    h(
      "td",
      { "data-label": "Actions", class: "row-actions" },
      h("a", { class: "button small", href: `/configs?edit=${encodeURIComponent(config.id)}` }, "Edit"),
      actionButton("Delete", async () => {
        if (!confirm(`Delete the config ${config.name}?`)) return;
        await api("DELETE", `/configs/${encodeURIComponent(config.id)}`);
        flash(`Deleted the config ${config.name}.`);
        await configsPage();
      }, { class: "small danger" }),
    ),
  ));
  render(
    pageHeader("Configs", h("a", { class: "button primary", href: "/configs?new" }, "New config")),
    configs.length
      ? table("Configs", ["Name", "Installer", "Kubernetes", "KubeSpan", "Changed", "Actions"], rows)
      : h("p", { class: "card" }, "No config yet. A config is the template of a node's machine config: versions and patches."),
  );
}

/** The config's warnings (saved anyway), as `field: message` texts. */
function warningsOf(config) {
  return (config?.warnings ?? []).map((warning) => `${warning.path}: ${warning.message}`);
}

function patchArea(name, value) {
  return h("textarea", { name, class: "code", rows: 12, spellcheck: "false", autocomplete: "off", autocapitalize: "off", value: value ?? "" });
}

/**
 * The create form, or the edit form of `config`; `warnings` are Talos's warnings of its save
 * (the config's own warnings, such as a newer Talos minor, are shown apart).
 */
async function configForm(config, warnings = []) {
  const values = config ?? NEW_CONFIG;
  const supported = await api("GET", "/talos-versions/supported").catch(() => ({ versions: [] }));
  const newest = supported.versions[0];
  const installers = h(
    "datalist",
    { id: "supported-installers" },
    supported.versions.map((version) => h("option", { value: version.install_image }, `Talos ${version.release}, Kubernetes ${version.kubernetes_version} by default`)),
  );
  const installerHint = newest
    ? `Its tag picks the Talos version (talos-manager knows ${supported.versions.map((v) => v.release).join(", ")}), e.g. ${newest.install_image}. Empty: the service's default, ${supported.default_install_image}.`
    : "Its tag picks the Talos version. Empty: the service's default Talos.";
  const kubernetesHint = newest
    ? `For new clusters, e.g. ${newest.kubernetes_version}. Empty: the service's default, ${supported.default_kubernetes_version}.`
    : "For new clusters. Empty: the service's default Kubernetes.";
  const form = h(
    "form",
    { class: "card", id: "config-form" },
    ...warningsOf({ warnings: (config?.warnings ?? []).filter((w) => w.path === "install_image") }).map((text) => h("p", { class: "warning", role: "status" }, text)),
    formWarnings(warnings.filter((w) => w.path !== "install_image"), "Saved. Talos warns about the configs this template generates:"),
    formIssues(),
    installers,
    field("Name", h("input", { name: "name", required: true, value: config?.name ?? "", autocomplete: "off" })),
    h(
      "div",
      { class: "field-row" },
      field("Installer image", h("input", { name: "install_image", value: values.install_image ?? "", placeholder: "the default Talos", autocomplete: "off", list: "supported-installers" }), installerHint),
      field("Kubernetes version", h("input", { name: "kubernetes_version", value: values.kubernetes_version ?? "", placeholder: "the default Kubernetes", autocomplete: "off" }), kubernetesHint),
    ),
    field("KubeSpan", h("input", { type: "checkbox", name: "kubespan", checked: values.kubespan }), "A WireGuard mesh between the nodes."),
    field("Patch for every node", patchArea("patch", config?.patch), PATCH_HINT),
    field("Patch for control-plane nodes", patchArea("patch_control_plane", config?.patch_control_plane), "Applied after the patch for every node."),
    field("Patch for worker nodes", patchArea("patch_worker", config?.patch_worker), "Applied after the patch for every node."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, config ? "Save config" : "Create config"), h("a", { href: "/configs", class: "button" }, "Cancel")),
  );
  onSubmit(form, async (data) => {
    const body = {
      ...formValues(data, ["name", "install_image", "kubernetes_version", "patch", "patch_control_plane", "patch_worker"]),
      kubespan: data.get("kubespan") === "on",
    };
    const saved = config
      ? await api("PUT", `/configs/${encodeURIComponent(config.id)}`, body)
      : await api("POST", "/configs", body);
    if (saved?.warnings?.length) {
      // Saved with warnings: stay on its edit form and show them apart from errors.
      history.replaceState(null, "", `/configs?edit=${encodeURIComponent(saved.id)}`);
      await configForm(saved, saved.warnings);
      return;
    }
    location.assign("/configs");
  });
  render(pageHeader(config ? `Edit config ${config.name}` : "New config"), form);
}
