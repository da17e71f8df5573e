# talos-manager from Terraform: the bootstrap defaults, a label and taint rule for workers, and
# the machine config of one server found by name. The acceptance tests apply this file
# (terraform-provider/tests/provider/example.rs), so it cannot rot.
#
#   export TALOS_MANAGER_ENDPOINT=http://127.0.0.1:3000
#   export TALOS_MANAGER_TOKEN=...   # talos-manager token create terraform
#   terraform apply -var server_name=worker-1 -var config_id=1
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

variable "server_name" {
  type        = string
  description = "The name of a server talos-manager has synced from Hetzner."
}

variable "config_id" {
  type        = string
  description = "The id of the config template the server boots with."
}

resource "talosmanager_settings" "this" {
  talos_version = "v1.10.4"
}

resource "talosmanager_label_taint_rule" "workers" {
  match  = "worker"
  labels = "node-role.kubernetes.io/worker="
}

data "talosmanager_server" "node" {
  name = var.server_name
}

resource "talosmanager_machine_config" "node" {
  server_id = data.talosmanager_server.node.id
  config_id = var.config_id
}

data "talosmanager_servers" "robot" {
  provider_kind = "hetzner_robot"
}

output "hostname" {
  value = talosmanager_machine_config.node.hostname
}

output "private_ip" {
  value = talosmanager_machine_config.node.private_ip
}

output "robot_servers" {
  value = [for server in data.talosmanager_servers.robot.servers : server.name]
}
