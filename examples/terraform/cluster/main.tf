# A small Talos cluster on Hetzner Robot and Cloud, managed with talos-manager from Terraform:
# a Robot account and a Cloud project, an Image Factory schematic and the bootstrap defaults,
# a cluster on the Robot servers' vSwitch, a config template per kind of server (the Robot one
# with the original talos-manager's baseline patch), three servers found among the synced ones
# put into the cluster with their machine configs, (once `bootstrap_nodes` names them)
# their bootstraps and etcd's bootstrap of the cluster, and (once `upgrade_to` is set) a
# rolling upgrade of the cluster. The
# acceptance tests apply this file against the fake Hetzner
# APIs (terraform-provider/tests/provider/example.rs), so it cannot rot.
#
#   export TALOS_MANAGER_ENDPOINT=http://127.0.0.1:3000
#   export TALOS_MANAGER_TOKEN=...   # talos-manager token create terraform
#   export TF_VAR_robot_user=... TF_VAR_robot_password=... TF_VAR_cloud_token=...
#
# Servers are known to talos-manager once it has synced the accounts, so apply in two steps:
#
#   terraform apply -target=talosmanager_provider_account.robot -target=talosmanager_provider_account.cloud
#   # wait for the next sync (SYNC_INTERVAL), or: curl -X POST -H "Authorization: Bearer $TALOS_MANAGER_TOKEN" $TALOS_MANAGER_ENDPOINT/api/v1/servers/sync
#   terraform apply
#
# Until the provider is published, point Terraform at a built binary with dev_overrides (see
# examples/README.md) and skip `terraform init`.

terraform {
  required_providers {
    talosmanager = {
      source = "talos-manager/talosmanager"
    }
  }
}

# Endpoint and token come from TALOS_MANAGER_ENDPOINT and TALOS_MANAGER_TOKEN.
provider "talosmanager" {}

variable "robot_user" {
  type        = string
  description = "The Robot webservice user (#ws+…)."
}

variable "robot_password" {
  type        = string
  description = "The Robot webservice password."
  sensitive   = true
}

variable "cloud_token" {
  type        = string
  description = "A read and write API token of the Cloud project."
  sensitive   = true
}

variable "robot_nodes" {
  type        = set(string)
  description = "Names of the Robot servers to configure; the name gives the role (control-plane-N or worker-N)."
  default     = ["control-plane-1", "worker-1"]
}

variable "cloud_nodes" {
  type        = set(string)
  description = "Names of the Cloud servers to configure."
  default     = ["worker-2"]
}

variable "talos_version" {
  type        = string
  description = "The Talos version servers are bootstrapped with."
  default     = "v1.13.9"
}

resource "talosmanager_provider_account" "robot" {
  provider_kind = "hetzner_robot"
  name          = var.robot_user
  secret        = var.robot_password
}

resource "talosmanager_provider_account" "cloud" {
  provider_kind = "hetzner_cloud"
  name          = "production"
  secret        = var.cloud_token
}

# talos-manager adds its own talos.config= kernel argument; write only what you need.
resource "talosmanager_schematic" "default" {
  name = "default"
  body = <<-YAML
    customization:
      systemExtensions:
        officialExtensions:
          - siderolabs/amd-ucode
  YAML
}

data "talosmanager_talos_versions" "stable" {
  stable_only = true
}

resource "talosmanager_settings" "this" {
  talos_version        = var.talos_version
  default_schematic_id = talosmanager_schematic.default.id
}

data "talosmanager_servers" "robot" {
  provider_account_id = talosmanager_provider_account.robot.id
}

data "talosmanager_servers" "cloud" {
  provider_account_id = talosmanager_provider_account.cloud.id
}

locals {
  robot_servers = { for server in data.talosmanager_servers.robot.servers : server.name => server }
  cloud_servers = { for server in data.talosmanager_servers.cloud.servers : server.name => server }
  # The vSwitch the Robot nodes share: its VLAN fills ${vlan} in the Robot patch.
  vswitch_ids = distinct(compact([for name in var.robot_nodes : local.robot_servers[name].vswitch_id]))
}

resource "talosmanager_cluster" "production" {
  name       = "production"
  endpoint   = "https://10.0.0.1:6443"
  vswitch_id = one(local.vswitch_ids)
}

# The original talos-manager's baseline patch for dedicated servers: Talos installs to the disk
# it was bootstrapped on, and the node gets its public address on eth0 and its private one on
# the vSwitch VLAN. ${…} are talos-manager's variables, filled in for each server (written
# $${…} in HCL). The node's hostname is not in the patch: the service sets it for every Talos
# version (Talos 1.12+ refuses machine.network.hostname next to its HostnameConfig).
resource "talosmanager_config" "robot" {
  name               = "robot"
  install_image      = "factory.talos.dev/installer/${talosmanager_schematic.default.factory_id}:${var.talos_version}"
  kubernetes_version = "1.36.3"
  patch              = <<-YAML
    machine:
      install:
        diskSelector:
          wwid: $${bootstrap_disk_wwid}
      network:
        interfaces:
          - dhcp: true
            interface: eth0
            addresses:
              - $${public_ip}/24
            vlans:
              - addresses:
                  - $${private_ip}/21
                mtu: 1400
                vlanId: $${vlan}
  YAML
  patch_worker       = <<-YAML
    machine:
      kubelet:
        extraMounts:
          - destination: /var/openebs/local
            options:
              - rbind
              - rshared
              - rw
            source: /var/openebs/local
            type: bind
  YAML
}

# Cloud servers are not on the vSwitch: DHCP on eth0, KubeSpan joins them to the others.
resource "talosmanager_config" "cloud" {
  name               = "cloud"
  install_image      = "factory.talos.dev/installer/${talosmanager_schematic.default.factory_id}:${var.talos_version}"
  kubernetes_version = "1.36.3"
  # No patch: the service sets each node's hostname (a HostnameConfig document on Talos 1.12+).
}

# The configured servers join the cluster (in talos-manager: their names stay as synced, and
# destroying these only takes them out of the cluster, never deletes them at Hetzner).
resource "talosmanager_server" "robot" {
  for_each   = var.robot_nodes
  server_id  = local.robot_servers[each.key].id
  cluster_id = talosmanager_cluster.production.id
}

resource "talosmanager_server" "cloud" {
  for_each   = var.cloud_nodes
  server_id  = local.cloud_servers[each.key].id
  cluster_id = talosmanager_cluster.production.id
}

resource "talosmanager_machine_config" "robot" {
  for_each  = var.robot_nodes
  server_id = talosmanager_server.robot[each.key].id
  config_id = talosmanager_config.robot.id
}

resource "talosmanager_machine_config" "cloud" {
  for_each  = var.cloud_nodes
  server_id = talosmanager_server.cloud[each.key].id
  config_id = talosmanager_config.cloud.id
}

variable "bootstrap_nodes" {
  type        = set(string)
  description = "Names of the configured servers to bootstrap: talos-manager erases their disk, installs Talos and waits until the node fetched its machine config. Empty at first: add servers once their machine configs look right."
  default     = []
}

variable "reset_on_destroy" {
  type        = string
  description = "What destroying a bootstrap does to its node: null keeps it running; \"maintenance\" resets it back to maintenance mode, \"wipe\" wipes its disk, \"wipe_to_rescue\" wipes it and boots the rescue system."
  default     = null
}

resource "talosmanager_server_bootstrap" "node" {
  for_each         = var.bootstrap_nodes
  server_id        = merge(talosmanager_server.robot, talosmanager_server.cloud)[each.key].id
  talos_version    = var.talos_version
  timeout          = "45m"
  reset_on_destroy = var.reset_on_destroy

  # The node fetches its config as soon as Talos boots, with the settings' schematic.
  depends_on = [
    talosmanager_machine_config.robot,
    talosmanager_machine_config.cloud,
    talosmanager_settings.this,
  ]
}

# etcd's bootstrap (what `talosctl bootstrap` does), once servers are bootstrapped: talos-manager
# calls Bootstrap on the first control plane that fetched its config, once. It does so by itself
# too; this resource makes apply wait until the cluster's etcd and Kubernetes API answer.
resource "talosmanager_cluster_bootstrap" "production" {
  count      = length(var.bootstrap_nodes) == 0 ? 0 : 1
  cluster_id = talosmanager_cluster.production.id
  timeout    = "30m"

  depends_on = [talosmanager_server_bootstrap.node]
}

variable "upgrade_to" {
  type        = string
  description = "A Talos version to upgrade the running cluster to, node after node (control planes first). Null at first: bootstrapped nodes run `talos_version`; set it later to upgrade them in place."
  default     = null
}

# A rolling upgrade of the bootstrapped nodes. Raising `upgrade_to` again upgrades again, in
# place; removing it leaves the nodes at their version.
resource "talosmanager_cluster_upgrade" "production" {
  count         = var.upgrade_to == null ? 0 : 1
  cluster_id    = talosmanager_cluster.production.id
  talos_version = var.upgrade_to
  timeout       = "2h"

  depends_on = [talosmanager_server_bootstrap.node, talosmanager_cluster_bootstrap.production]
}

output "nodes" {
  description = "The private IP of every configured node, by server name."
  value = merge(
    { for name, config in talosmanager_machine_config.robot : name => config.private_ip },
    { for name, config in talosmanager_machine_config.cloud : name => config.private_ip },
  )
}

output "newest_talos_version" {
  description = "The newest stable Talos version the Image Factory builds."
  value       = data.talosmanager_talos_versions.stable.latest
}

output "talosconfig" {
  value     = talosmanager_cluster.production.talosconfig
  sensitive = true
}
