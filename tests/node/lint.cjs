// caniemail lint of one email: the HTML on stdin, JSON on stdout.
//   node lint.cjs NODE_MODULES CLIENT_GLOB... < mail.html
// Before the lint, what the design may not depend on is taken out (tests/test_email_clients.py
// says why): every <style> element, and the preheader (class "preheader").
// Output: {"errors": [...], "warnings": [...], "removed": {"style": n, "preheader": n}}.
"use strict";
const path = require("node:path");
const fs = require("node:fs");

const [modules, ...clients] = process.argv.slice(2);
const need = (name) => require(path.join(modules, name));
const { doIUseEmail } = need("@jsx-email/doiuse-email");
const { parseDocument } = need("htmlparser2");
const { findAll, removeElement } = need("domutils");
const render = need("dom-serializer").default;

const document = parseDocument(fs.readFileSync(0, "utf8"));
const styles = findAll((el) => el.name === "style", document.children);
const preheaders = findAll(
  (el) => (el.attribs.class || "").split(/\s+/).includes("preheader"),
  document.children,
);
for (const el of [...styles, ...preheaders]) removeElement(el);

const result = doIUseEmail(render(document), { emailClients: clients });
process.stdout.write(
  JSON.stringify({
    errors: result.success ? [] : result.errors,
    warnings: result.warnings,
    removed: { style: styles.length, preheader: preheaders.length },
  }),
);
