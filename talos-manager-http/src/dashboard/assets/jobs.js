// The jobs page: the list, and one job with its log following live.

import { api, followJobLog } from "./api.js";
import { actionButton, flash, h, pageHeader, param, render, table, time } from "./ui.js";

const FINISHED = ["succeeded", "failed", "cancelled"];

function statusBadge(status) {
  return h("span", { class: `job-status ${status}`, "data-status": status }, status);
}

/** Jobs per page of the list, as the API's default page. */
const PAGE = 100;

/** The jobs page; `?id=<id>` shows one job and follows its log, `?before=<id>` older jobs. */
export async function jobsPage() {
  if (param("id")) return jobPage(param("id"));
  const container = h("div", { id: "jobs" });
  const before = param("before");
  render(pageHeader(before ? `Jobs before #${before}` : "Jobs", before ? h("a", { class: "button", href: "/jobs" }, "Newest jobs") : null), container);
  const reload = async () => {
    const query = `?limit=${PAGE}${before ? `&cursor=${encodeURIComponent(before)}` : ""}`;
    const jobs = await api("GET", `/jobs${query}`);
    const rows = jobs.map((job) => h(
      "tr",
      { "data-job": job.id },
      h("th", { scope: "row", "data-label": "Job" }, h("a", { href: `/jobs?id=${encodeURIComponent(job.id)}` }, `#${job.id} ${job.kind}`)),
      h("td", { "data-label": "Server" }, job.server_id ?? h("span", { class: "muted" }, "–")),
      h("td", { "data-label": "Status" }, statusBadge(job.status), job.last_error ? h("span", { class: "error-text" }, ` ${job.last_error}`) : null),
      h("td", { "data-label": "Queued" }, time(job.created_at)),
      h("td", { "data-label": "Finished" }, time(job.finished_at)),
    ));
    const older = jobs.length === PAGE
      ? h("p", {}, h("a", { class: "button", id: "older-jobs", href: `/jobs?before=${encodeURIComponent(jobs[jobs.length - 1].id)}` }, "Older jobs"))
      : null;
    container.replaceChildren(jobs.length ? table("Jobs, newest first", ["Job", "Server", "Status", "Queued", "Finished"], rows) : h("p", { class: "card" }, "No job yet."), older ?? "");
  };
  await reload();
  const timer = setInterval(() => {
    if (!document.body.contains(container)) return clearInterval(timer);
    reload().catch(() => {});
  }, 5000);
}

async function jobPage(id) {
  let job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
  const status = h("dd", { id: "job-status" }, statusBadge(job.status));
  const lastError = h("dd", { id: "job-error" }, job.last_error ?? "–");
  const log = h("ol", { class: "log", id: "job-log", "aria-live": "polite", "aria-label": "Log" });
  const following = h("p", { class: "muted", id: "log-state" }, "Following the log…");
  const cancel = actionButton("Cancel job", async () => {
    if (!confirm(`Cancel job #${job.id}?`)) return;
    job = await api("POST", `/jobs/${encodeURIComponent(job.id)}/cancel`);
    flash(`Asked job #${job.id} to stop.`);
  }, { class: "danger" });
  cancel.hidden = FINISHED.includes(job.status);
  render(
    pageHeader(`Job #${job.id}: ${job.kind}`, cancel, h("a", { class: "button", href: "/jobs" }, "All jobs")),
    h(
      "dl",
      { class: "card facts" },
      h("dt", {}, "Status"), status,
      h("dt", {}, "Server"), h("dd", {}, job.server_id ?? "–"),
      h("dt", {}, "Queued"), h("dd", {}, time(job.created_at)),
      h("dt", {}, "Attempts"), h("dd", {}, String(job.attempts)),
      h("dt", {}, "Last error"), lastError,
    ),
    h("section", { class: "card", "aria-labelledby": "log-title" }, h("h2", { id: "log-title" }, "Log"), log, following),
  );
  const refreshJob = async () => {
    job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
    status.replaceChildren(statusBadge(job.status));
    lastError.replaceChildren(job.last_error ?? "–");
    cancel.hidden = FINISHED.includes(job.status);
  };
  const controller = new AbortController();
  window.addEventListener("pagehide", () => controller.abort(), { once: true });
  let ended = false;
  try {
    await followJobLog(id, (event) => {
      if (event.line != null) {
        log.append(h("li", { "data-line": event.line_id ?? "" }, h("time", { datetime: event.at ?? "" }, event.at ? new Date(event.at).toLocaleTimeString() : ""), " ", event.line));
        log.lastElementChild.scrollIntoView({ block: "nearest" });
      }
      if (event.job_status) {
        ended = true;
        status.replaceChildren(statusBadge(event.job_status));
        cancel.hidden = true;
      }
    }, controller.signal);
  } catch (error) {
    following.textContent = `The log stopped: ${error.message}`;
    return;
  }
  following.textContent = ended ? "The job has ended." : "The connection closed; reload to follow again.";
  await refreshJob().catch(() => {});
}
