// DOM helpers shared by the pages: element building, forms with inline issues, times, messages.

/**
 * Builds an element: `h("a", { href: "/x", class: "button" }, "text", child)`. Attributes whose
 * name starts with `on` become listeners; `false`, null and undefined attributes are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value") {
      element.value = value;
    } else if (name === "checked") {
      element.checked = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the page's content. */
export function render(...children) {
  const main = document.getElementById("main");
  main.replaceChildren();
  append(main, children);
}

/** A page heading with optional actions on the right. */
export function pageHeader(title, ...actions) {
  document.title = `${title} · talos-manager`;
  return h("div", { class: "page-header" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

let flashTimer;

/** Shows a short message at the top; `kind` is "info" or "error". */
export function flash(message, kind = "info") {
  const box = document.getElementById("flash");
  box.replaceChildren(h("p", { class: `flash ${kind}` }, message));
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => box.replaceChildren(), kind === "error" ? 15000 : 5000);
}

/** Shows an error from the API (or anything thrown) as a message. */
export function flashError(error) {
  flash(error?.message || String(error), "error");
}

let fieldCounter = 0;

/**
 * A labelled form field. `control` is an input, select or textarea with a `name`; `hint` is
 * shown below it. The issues of `showIssues` for that name appear under it.
 */
export function field(label, control, hint) {
  const id = control.id || `field-${++fieldCounter}`;
  control.id = id;
  const issuesId = `${id}-issues`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute("aria-describedby", [hintId, issuesId].filter(Boolean).join(" "));
  const isCheckbox = control.type === "checkbox";
  return h(
    "div",
    { class: isCheckbox ? "field checkbox" : "field", "data-field": control.name },
    isCheckbox ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("ul", { class: "issues", id: issuesId }),
  );
}

/**
 * Shows validation issues in `form`: each under the field its `path` starts with (`patch`,
 * `patch.machine.network`, `secrets[0]`), with the path; the others in the form's summary.
 */
export function showIssues(form, issues, message) {
  clearIssues(form);
  const fields = [...form.querySelectorAll("[data-field]")];
  const summary = form.querySelector(".form-issues");
  const leftOver = [];
  for (const issue of issues) {
    const target = fields.find((candidate) => {
      const name = candidate.dataset.field;
      const path = issue.path || "";
      return path === name || path.startsWith(`${name}.`) || path.startsWith(`${name}[`) || path.startsWith(`${name}:`);
    });
    const item = h("li", {}, issue.path ? [h("code", { class: "path" }, issue.path), " "] : null, issue.message);
    if (target) {
      target.querySelector(".issues").append(item);
      target.classList.add("invalid");
      target.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
    } else {
      leftOver.push(item);
    }
  }
  if (summary) {
    if (message || leftOver.length) {
      summary.replaceChildren(h("p", {}, message || "Please check the form."), h("ul", {}, leftOver));
      summary.hidden = false;
    }
  }
  form.querySelector(".invalid input, .invalid select, .invalid textarea")?.focus();
}

/** Removes the issues shown by `showIssues`. */
export function clearIssues(form) {
  for (const list of form.querySelectorAll(".issues")) list.replaceChildren();
  for (const invalid of form.querySelectorAll(".invalid")) invalid.classList.remove("invalid");
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-issues");
  if (summary) {
    summary.hidden = true;
    summary.replaceChildren();
  }
}

/**
 * Talos's warnings about what a form saved (deprecated fields, each with its path), shown apart
 * from issues: the save succeeded. Nothing when there are none.
 */
export function formWarnings(warnings, message) {
  if (!warnings?.length) return null;
  return h(
    "div",
    { class: "form-warnings", role: "status" },
    h("p", {}, message),
    h("ul", {}, warnings.map((warning) => h("li", {}, warning.path ? [h("code", { class: "path" }, warning.path), " "] : null, warning.message))),
  );
}

/** The place a form shows issues that belong to no field (put it at the top of the form). */
export function formIssues() {
  return h("div", { class: "form-issues", role: "alert", hidden: true });
}

/**
 * Runs `save` when `form` is submitted, with the submit button disabled meanwhile; shows 422
 * issues inline and other errors at the top.
 */
export function onSubmit(form, save) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button[type=submit]");
    for (const button of buttons) button.disabled = true;
    clearIssues(form);
    try {
      await save(new FormData(form));
    } catch (error) {
      if (error?.issues?.length) {
        showIssues(form, error.issues, error.message);
      } else {
        showIssues(form, [], error?.message || String(error));
      }
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  });
}

/** The form's text fields as an object, leaving out empty ones. */
export function formValues(data, names) {
  const values = {};
  for (const name of names) {
    const value = (data.get(name) ?? "").toString();
    if (value.trim() !== "") values[name] = value;
  }
  return values;
}

/** How long ago `timestamp` was, in words ("3 min ago"). */
export function ago(timestamp, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(timestamp)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** A `<time>` element showing a timestamp in the browser's locale. */
export function time(timestamp) {
  if (!timestamp) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: timestamp, title: timestamp }, new Date(timestamp).toLocaleString());
}

/** Copies text to the clipboard, also where the Clipboard API is unavailable (plain HTTP). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "offscreen", readonly: true, value: text });
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

/** A button that runs `action` (async), disabled while it runs; errors go to `flashError`. */
export function actionButton(label, action, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      flashError(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A table with a caption (visually hidden when `hideCaption`), headers and rows. */
export function table(caption, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((header) => h("th", { scope: "col" }, header)))),
      h("tbody", {}, rows),
    ),
  );
}

/** The search parameter `name` of the current address. */
export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

/**
 * Opens a modal dialog titled `title` with `content` and a Close button; answers the <dialog>.
 * It is removed from the page when closed (Escape, the button, or `dialog.close()`).
 */
export function showDialog(title, ...content) {
  const titleId = `dialog-title-${++fieldCounter}`;
  const dialog = h(
    "dialog",
    { class: "card dialog", "aria-labelledby": titleId },
    h("div", { class: "page-header" }, h("h2", { id: titleId }, title), h("button", { type: "button", class: "small", "data-close": true }, "Close")),
    content,
  );
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** Text to read and copy (a command, a document): a block with a Copy button. */
export function copyBlock(text, label) {
  return h(
    "div",
    { class: "copy-block" },
    h("pre", { class: "code" }, text),
    actionButton("Copy", async () => {
      await copyText(text);
      flash(`Copied the ${label}.`);
    }, { class: "small" }),
  );
}
