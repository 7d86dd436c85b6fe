// supagate /docs: renders /openapi.json (same origin) as an API reference. No framework,
// no external assets: the page must work with no internet connection, and the CSP on it
// allows nothing but same-origin requests.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
let spec = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A tiny, safe Markdown subset for descriptions: paragraphs, `- ` lists, ## headings,
// `code` and **bold**. Text is inserted as text nodes, never as HTML.
function inline(text) {
  const out = [];
  const re = /(`[^`]+`|\*\*[^*]+\*\*)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const token = m[0];
    out.push(token.startsWith("`") ? el("code", { text: token.slice(1, -1) }) : el("strong", { text: token.slice(2, -2) }));
    last = m.index + token.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function markdown(text) {
  const box = el("div");
  if (!text) return box;
  let list = null;
  let para = [];
  const flush = () => {
    if (para.length) box.append(el("p", {}, inline(para.join(" "))));
    para = [];
  };
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (/^##+ /.test(line)) { flush(); list = null; box.append(el("h2", {}, inline(line.replace(/^#+ /, "")))); }
    else if (/^\s*- /.test(line)) { flush(); if (!list) { list = el("ul"); box.append(list); } list.append(el("li", {}, inline(line.replace(/^\s*- /, "")))); }
    else if (/^\s+\S/.test(line) && list && list.lastChild) { list.lastChild.append(" ", ...inline(line.trim())); }
    else if (line === "") { flush(); list = null; }
    else { list = null; para.push(line); }
  }
  flush();
  return box;
}

function resolve(node) {
  let seen = 0;
  while (node && node.$ref && seen++ < 20) {
    const parts = node.$ref.replace(/^#\//, "").split("/");
    node = parts.reduce((acc, key) => (acc ? acc[key] : undefined), spec);
  }
  return node || {};
}

function refName(node) {
  return node && node.$ref ? node.$ref.split("/").pop() : null;
}

function typeLabel(schema) {
  const name = refName(schema);
  if (name) return name;
  const s = schema || {};
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeLabel).join(" | ");
  let type = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.properties ? "object" : "any");
  if (type.includes("array") && s.items) type = type.replace("array", typeLabel(s.items) + "[]");
  if (s.format) type += " (" + s.format + ")";
  return type;
}

function constraints(s) {
  const out = [];
  const add = (label, value) => { if (value !== undefined) out.push(label + " " + JSON.stringify(value)); };
  add("min", s.minimum); add("max", s.maximum); add(">", s.exclusiveMinimum); add("<", s.exclusiveMaximum);
  add("minLength", s.minLength); add("maxLength", s.maxLength); add("pattern", s.pattern);
  add("multipleOf", s.multipleOf); add("default", s.default); add("minProperties", s.minProperties);
  if (s.enum) out.push("one of " + s.enum.map((v) => JSON.stringify(v)).join(", "));
  if (s.additionalProperties === false) out.push("no other fields");
  return out.join(" · ");
}

// Renders an object schema as a nested property list (depth-limited; $refs expanded).
function schemaView(schema, depth) {
  const s = resolve(schema);
  const box = el("div", { class: "schema" });
  const head = el("div", {}, el("span", { class: "type", text: typeLabel(schema) }));
  const cons = constraints(s);
  if (cons) head.append(" ", el("span", { class: "cons", text: cons }));
  box.append(head);
  if (s.enum === undefined && s.oneOf) s.oneOf.forEach((alt) => box.append(schemaView(alt, depth + 1)));
  const item = s.items ? resolve(s.items) : null;
  const props = s.properties || (item && item.properties);
  const required = new Set((s.properties ? s.required : item && item.required) || []);
  if (props && depth < 3) {
    for (const [name, prop] of Object.entries(props)) {
      const p = resolve(prop);
      const row = el("div", { class: "prop" },
        el("code", { text: name }), required.has(name) ? el("span", { class: "req", text: "required" }) : null,
        " ", el("span", { class: "type", text: typeLabel(prop) }));
      const c = constraints(p);
      if (c) row.append(" ", el("span", { class: "cons", text: c }));
      if (p.description || prop.description) row.append(el("div", { class: "cons" }, inline(prop.description || p.description)));
      if ((p.properties || (p.items && resolve(p.items).properties)) && depth < 2) row.append(schemaView(prop, depth + 1));
      box.append(row);
    }
  }
  return box;
}

function example(content, schema) {
  if (!content) return null;
  if (content.example !== undefined) return content.example;
  if (content.examples) {
    const first = Object.values(content.examples)[0];
    if (first && first.value !== undefined) return first.value;
  }
  const s = resolve(schema);
  if (s.example !== undefined) return s.example;
  if (s.items && resolve(s.items).example !== undefined) return [resolve(s.items).example];
  return null;
}

function security(op) {
  const reqs = op.security || spec.security || [];
  if (!reqs.length) return el("span", { class: "cons", text: "none" });
  const optional = reqs.some((r) => Object.keys(r).length === 0);
  const names = reqs.flatMap((r) => Object.keys(r));
  if (!names.length) return el("span", { class: "cons", text: "none" });
  return el("span", {}, names.map((n) => el("span", { class: "sec", text: n })), optional ? el("span", { class: "cons", text: " optional" }) : null);
}

function operationView(path, method, op) {
  const id = (method + path).replace(/[^a-zA-Z0-9]+/g, "-");
  const details = el("details", { class: "op", id, "data-search": (method + " " + path + " " + (op.tags || []).join(" ") + " " + (op.summary || "")).toLowerCase() });
  details.append(el("summary", {},
    el("span", { class: "m " + method, text: method.toUpperCase() }),
    el("span", { class: "path", text: path }),
    el("span", { class: "sum" }, inline(op.summary || ""))));
  const body = el("div", { class: "body" });
  if (op.description) body.append(markdown(op.description));
  body.append(el("div", {}, el("strong", { text: "Auth: " }), security(op)));

  const params = op.parameters || [];
  if (params.length) {
    body.append(el("h4", { text: "Parameters" }));
    const table = el("table", {}, el("tr", {}, el("th", { text: "name" }), el("th", { text: "in" }), el("th", { text: "type" }), el("th", { text: "description" })));
    for (const raw of params) {
      const p = resolve(raw);
      const s = resolve(p.schema);
      table.append(el("tr", {},
        el("td", {}, el("code", { text: p.name }), p.required ? el("span", { class: "req", text: "required" }) : null),
        el("td", { text: p.in }),
        el("td", {}, el("span", { class: "type", text: typeLabel(p.schema) }), el("div", { class: "cons", text: constraints(s) })),
        el("td", {}, inline(p.description || ""))));
    }
    body.append(table);
  }

  if (op.requestBody) {
    const rb = resolve(op.requestBody);
    body.append(el("h4", { text: "Request body" + (rb.required ? "" : " (optional)") }));
    if (rb.description) body.append(el("div", { class: "cons" }, inline(rb.description)));
    for (const [type, content] of Object.entries(rb.content || {})) {
      body.append(el("div", {}, el("code", { text: type })), schemaView(content.schema, 0));
      const ex = example(content, content.schema);
      if (ex !== null) body.append(el("pre", { text: JSON.stringify(ex, null, 2) }));
    }
  }

  body.append(el("h4", { text: "Responses" }));
  const table = el("table", { class: "responses" }, el("tr", {}, el("th", { text: "status" }), el("th", { text: "description" })));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const r = resolve(raw);
    const cell = el("td", {}, markdown(r.description || ""));
    const headers = Object.keys(r.headers || {}).filter((h) => h !== "X-Request-Id");
    if (headers.length) cell.append(el("div", { class: "cons" }, "headers: ", headers.map((h) => el("code", { text: h })).flatMap((c, i) => (i ? [", ", c] : [c]))));
    for (const content of Object.values(r.content || {})) {
      if (content.schema) cell.append(schemaView(content.schema, 1));
      const ex = example(content, content.schema);
      if (ex !== null) cell.append(el("pre", { text: JSON.stringify(ex, null, 2) }));
    }
    table.append(el("tr", {}, el("td", {}, el("span", { class: "status s" + status[0], text: status })), cell));
  }
  body.append(table);
  details.append(body);
  return details;
}

function render() {
  document.title = spec.info.title + " API reference";
  document.getElementById("title").textContent = spec.info.title + " API reference";
  document.getElementById("version").textContent = "v" + spec.info.version;
  document.getElementById("oas").textContent = spec.openapi;
  const nav = document.getElementById("nav");
  const content = document.getElementById("content");
  content.replaceChildren();
  const intro = markdown(spec.info.description || "");
  intro.className = "intro";
  content.append(intro);

  const tags = (spec.tags || []).map((t) => t.name);
  const byTag = new Map(tags.map((t) => [t, []]));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  const list = el("div", { id: "endpoints" });
  for (const [tag, ops] of byTag) {
    if (!ops.length) continue;
    const info = (spec.tags || []).find((t) => t.name === tag);
    nav.append(el("h3", { text: tag }));
    list.append(el("h2", { class: "tag-title", text: tag }), info && info.description ? el("div", { class: "cons", text: info.description }) : null);
    for (const [path, method, op] of ops) {
      const view = operationView(path, method, op);
      list.append(view);
      const link = el("a", { href: "#" + view.id, "data-search": view.dataset.search, class: "endpoint-link" },
        el("span", { class: "m " + method, text: method.toUpperCase() }), el("span", { text: path }));
      link.addEventListener("click", () => { view.open = true; });
      nav.append(link);
    }
  }
  content.append(list);
  document.body.dataset.rendered = "true";
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) target.open = true;
  }
}

function filter(text) {
  const q = text.trim().toLowerCase();
  const intro = document.querySelector(".intro");
  if (intro) intro.classList.toggle("hidden", q !== "");
  document.querySelectorAll("[data-search]").forEach((node) => {
    node.classList.toggle("hidden", q !== "" && !node.dataset.search.includes(q));
  });
}

async function main() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error("GET /openapi.json answered " + res.status);
    spec = await res.json();
    render();
  } catch (e) {
    status.textContent = "Could not load /openapi.json: " + e.message;
    status.className = "error";
    return;
  }
  const input = document.getElementById("filter");
  input.addEventListener("input", (e) => filter(e.target.value));
  // `/docs?q=post /api/items` opens the page filtered (links, and the screenshot script).
  const initial = new URLSearchParams(location.search).get("q");
  if (initial) {
    input.value = initial;
    filter(initial);
  }
}

main();
