// Validates control-plane requests (path, query, body) against E2B's openapi.yml, with Ajv.
// The SDK's /v2 create and connect bodies are not in the spec: they are checked against NewSandbox and
// a ConnectSandbox whose timeout is optional, plus "memory" (false: reboot on resume), as SDK 2.51 sends them.
// Stricter than the service: an object property the spec does not name, or a query parameter it does not
// declare, is reported as invalid, so that a client's typo cannot pass unnoticed.
import fs from "node:fs";
import YAML from "yaml";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const EXTRA_OPERATIONS = {
  "post /v2/sandboxes": { requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/NewSandbox" } } } }, parameters: [] },
  "post /v2/sandboxes/{sandboxID}/connect": { requestBody: { required: true, content: { "application/json": { schema: { type: "object", additionalProperties: false, properties: { timeout: { type: "integer", minimum: 0 }, memory: { type: "boolean" } } } } } }, parameters: [{ $ref: "#/components/parameters/sandboxID" }] },
};

function tighten(schema) {
  if (Array.isArray(schema)) { schema.forEach(tighten); return; }
  if (!schema || typeof schema !== "object") return;
  if (schema.properties && !schema.allOf && !schema.oneOf && !schema.anyOf && schema.additionalProperties === undefined) {
    schema.additionalProperties = false;
    if (!schema.type) schema.type = "object";
  }
  for (const v of Object.values(schema)) tighten(v);
}

export function createValidator(specFile) {
  const doc = YAML.parse(fs.readFileSync(specFile, "utf8"));
  tighten(doc.components.schemas);
  const ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: false });
  addFormats(ajv);
  ajv.addSchema({ $id: "spec", components: doc.components });
  const ops = [];
  const add = (method, tmpl, op, pathParams) => {
    const names = [];
    const re = new RegExp("^" + tmpl.replace(/\{(\w+)\}/g, (_, n) => { names.push(n); return "([^/]+)"; }) + "$");
    ops.push({ method, tmpl, re, names, op, params: [...(pathParams || []), ...(op.parameters || [])] });
  };
  for (const [tmpl, item] of Object.entries(doc.paths)) {
    for (const m of ["get", "post", "put", "patch", "delete"]) if (item[m]) add(m, tmpl, item[m], item.parameters);
  }
  for (const [k, op] of Object.entries(EXTRA_OPERATIONS)) { const [m, t] = k.split(" "); add(m, t, op); }
  // Specific templates before generic ones (e.g. /v2/sandboxes/{id}/connect is not /sandboxes/{id}).
  ops.sort((a, b) => (a.tmpl.match(/\{/g) || []).length - (b.tmpl.match(/\{/g) || []).length);
  const cache = new Map();
  const compile = (schema) => {
    const key = JSON.stringify(schema);
    if (!cache.has(key)) {
      const fixed = JSON.parse(key.replace(/"#\/components\//g, '"spec#/components/'));
      cache.set(key, ajv.compile(fixed));
    }
    return cache.get(key);
  };
  const deref = (p) => {
    if (p && p.$ref) {
      const parts = p.$ref.replace(/^#\//, "").split("/");
      let cur = doc;
      for (const part of parts) cur = cur[part];
      return cur;
    }
    return p;
  };
  const fmt = (where, errs) => errs.map((e) => `${where}${e.instancePath || ""} ${e.message}${e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : ""}${e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : ""}`).join("; ");

  // Returns null when valid, else a message saying what was wrong.
  return function validate(method, pathname, searchParams, bodyText, contentType) {
    const m = method.toLowerCase();
    const op = ops.find((o) => o.method === m && o.re.test(pathname));
    if (!op) return `no such operation in openapi.yml: ${method} ${pathname}`;
    const problems = [];
    const declared = new Set();
    for (const raw of op.params) {
      const p = deref(raw);
      if (p.in === "query") {
        declared.add(p.name);
        const values = searchParams.getAll(p.name);
        if (values.length === 0) { if (p.required) problems.push(`query parameter '${p.name}' is required`); continue; }
        if (values.length > 1 && p.schema?.type !== "array") { problems.push(`query parameter '${p.name}' given ${values.length} times`); continue; }
        let v = values[0];
        const s = deref(p.schema) || {};
        if (s.type === "array") v = values.length > 1 ? values : v.split(","); // style form, explode false: a,b
        else if (s.type === "integer") { if (!/^-?\d+$/.test(v)) { problems.push(`query parameter '${p.name}' must be an integer, got '${v}'`); continue; } v = Number(v); }
        else if (s.type === "boolean") { if (v !== "true" && v !== "false") { problems.push(`query parameter '${p.name}' must be true or false`); continue; } v = v === "true"; }
        const check = compile(p.schema);
        if (!check(v)) problems.push(fmt(`query parameter '${p.name}'`, check.errors));
      }
    }
    for (const k of new Set(searchParams.keys())) if (!declared.has(k)) problems.push(`query parameter '${k}' is not in the spec`);
    const rb = deref(op.op.requestBody);
    if (rb) {
      const hasBody = bodyText.length > 0;
      if (!hasBody) { if (rb.required) problems.push("a JSON request body is required"); }
      else {
        if (!/^application\/json/i.test(contentType || "")) problems.push(`Content-Type must be application/json, got '${contentType || ""}'`);
        let body;
        try { body = JSON.parse(bodyText); } catch (e) { problems.push(`the body is not JSON: ${e.message}`); }
        if (body !== undefined) {
          const check = compile(rb.content["application/json"].schema);
          if (!check(body)) problems.push(fmt("body", check.errors));
        }
      }
    } else if (bodyText.length > 0 && bodyText.trim() !== "") {
      problems.push(`${method} ${op.tmpl} takes no request body`);
    }
    return problems.length ? problems.join("; ") : null;
  };
}
