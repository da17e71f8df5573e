# talos-manager from Terraform: a cluster, a config template, the bootstrap defaults, a label and
# taint rule for workers, and the machine config of one server found by name. The acceptance
# tests apply this file (terraform-provider/tests/provider/example.rs), so it cannot rot.
#
#   export TALOS_MANAGER_ENDPOINT=http://127.0.0.1:3000
#   export TALOS_MANAGER_TOKEN=...   # talos-manager token create terraform
#   terraform apply -var server_name=worker-1
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

variable "cluster_endpoint" {
  type        = string
  description = "The Kubernetes API endpoint of the cluster."
  default     = "https://10.0.0.1:6443"
}

resource "talosmanager_cluster" "example" {
  name     = "example"
  endpoint = var.cluster_endpoint
}

# No installer or Kubernetes version: the service's defaults, the newest Talos it knows and that
# release's default Kubernetes.
resource "talosmanager_config" "default" {
  name = "default"
  # $${…} is a talos-manager variable, filled in for each server. The service sets each node's
  # hostname itself (as Talos 1.12+ wants it, a HostnameConfig document): no patch needed.
  patch = <<-YAML
    apiVersion: v1alpha1
    kind: KubeNodeConfig
    labels:
      example.com/node: $${hostname}
  YAML
}

resource "talosmanager_settings" "this" {
  talos_version = "v1.13.9"
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
  config_id = talosmanager_config.default.id
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

output "kubeconfig" {
  value     = talosmanager_cluster.example.kubeconfig
  sensitive = true
}

output "robot_servers" {
  value = [for server in data.talosmanager_servers.robot.servers : server.name]
}
