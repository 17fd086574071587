#!/usr/bin/env node
// Test stand-in for Azure Cosmos DB (SQL API): @vercel/cosmosdb-server 1.0.1, extended
// where that package departs from documented Cosmos DB behaviour, plus fault injection.
//
//   node launcher.js --host 127.0.0.1 --port 0 [--key BASE64] [--ranges N]
//                    [--tls-cert cert.pem --tls-key key.pem] [--latency-ms L]
//
// --latency-ms adds L ms before every answer (the service's own latency; in-region point
// operations are documented at under 10 ms at the 99th percentile), for benchmarks.
//
// Prints one line {"port":P} on stdout once listening. Serves plain HTTP unless a
// certificate is given (the package's bundled certificate expired in 2021; tests that
// exercise TLS generate a fresh self-signed one with openssl and trust it via the
// client's CA-file option).
//
// Added on top of the package (each follows the Cosmos DB REST documentation):
// - Authorization: with --key, every request must carry a master-key token
//   (type=master&ver=1.0&sig=HMAC-SHA256 over "verb\nresourceType\nresourceLink\ndate\n\n"
//   with the base64-decoded key) and an x-ms-date within 15 minutes; else 401.
// - Point reads of a missing document answer 404 (the package crashes with 500).
// - Partition key ranges: --ranges N splits every container into N ranges by a hash
//   of the partition key value (an md5-based stand-in for Cosmos's own hash: clients
//   only list ranges and read each, they never compute it). GET .../pkranges lists them.
// - Incremental change feed: GET .../docs with "A-IM: Incremental feed" and
//   "x-ms-documentdb-partitionkeyrangeid" returns the documents of that range changed after
//   the continuation given in If-None-Match, oldest first, one entry per document (its
//   latest version, with _lsn), at most x-ms-max-item-count; the ETag header is the
//   continuation for the next read; nothing new answers 304 Not Modified. Without
//   If-None-Match, If-Modified-Since (RFC 1123) starts after that time: only documents last
//   written in a later second (their _ts) are returned. Deletes are not in the feed. Each
//   range keeps its writes in LSN order, so a read costs its page, not the container. x-ms-session-token carries "<range>:-1#<latest LSN of the range>".
// - Request charges: an approximate model instead of the package's flat 1 RU (see charge()).
// - Transactional batches: POST .../docs with "x-ms-cosmos-is-batch-request: True" and
//   "x-ms-cosmos-batch-atomic: True", a JSON array of at most 100 Create operations
//   ({"operationType":"Create","resourceBody":{...}}) on the logical partition named by
//   x-ms-documentdb-partitionkey: all or nothing. 200 with one result per operation
//   ({statusCode, requestCharge, eTag, resourceBody}) when all are written; else 207 with the
//   failed operation's status and 424 (failed dependency) for the others, and nothing
//   written. The package applies such a batch one operation at a time and keeps what came
//   before a failure; here nothing else runs in between (one turn of node's loop) and a
//   failure removes what the batch created. Only atomic batches of creates are served.
// - A query that names a partition key (x-ms-documentdb-partitionkey) reads that logical
//   partition only, as the service does; the package ignored the header and scanned every
//   document of the container for each query (its cost grew with the container).
//
// Test controls (unsigned, only on this stand-in):
//   POST /_launcher/faults {"status":429,"count":N,"retryAfterMs":M,"probability":p,
//                           "method":"POST","subStatus":3200,"after":false}
//        the next N matching requests (each with probability p, default 1) answer `status`;
//        with "after": true they are carried out first and only their answer is replaced
//        (a lost answer: the client cannot tell whether the write happened)
//   GET  /_launcher/stats   counts of requests, injected faults, 401s, change-feed reads
"use strict";

const http = require("http");
const https = require("https");
const crypto = require("crypto");
const fs = require("fs");
const Account = require("@vercel/cosmosdb-server/lib/account").default;
const route = require("@vercel/cosmosdb-server/lib/routes").default;
const Items = require("@vercel/cosmosdb-server/lib/account/items").default;
const { AsyncLocalStorage } = require("async_hooks");

function parseArgs(argv) {
  const a = { host: "127.0.0.1", port: 0, key: "", ranges: 1, tlsCert: "", tlsKey: "", latencyMs: 0 };
  for (let i = 0; i < argv.length; i += 1) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === "--host") a.host = v;
    else if (k === "--port") a.port = parseInt(v, 10);
    else if (k === "--key") a.key = v;
    else if (k === "--ranges") a.ranges = parseInt(v, 10);
    else if (k === "--tls-cert") a.tlsCert = v;
    else if (k === "--tls-key") a.tlsKey = v;
    else if (k === "--latency-ms") a.latencyMs = Number(v);
    else throw new Error(`unknown argument ${k}`);
    i += 1;
  }
  if (!(a.ranges >= 1 && a.ranges <= 64)) throw new Error("--ranges must be 1..64");
  return a;
}

const args = parseArgs(process.argv.slice(2));
const stats = { requests: 0, faults: 0, unauthorized: 0, changeFeedReads: 0, notModified: 0, batches: 0 };
let fault = null; // {status, count, retryAfterMs, probability, method, subStatus}

// ---- auth ----------------------------------------------------------------------------

// Resource type and link of a request path, as the access-control page defines them:
// for a resource (even number of segments) the link is the path and the type is the
// segment before the id; for a feed (odd number) the link is the parent's path.
function resourceOf(pathname) {
  const segs = pathname.split("/").filter(s => s.length).map(decodeURIComponent);
  if (segs.length === 0) return { type: "", link: "" };
  if (segs.length % 2 === 1) return { type: segs[segs.length - 1], link: segs.slice(0, -1).join("/") };
  return { type: segs[segs.length - 2], link: segs.join("/") };
}

function signature(key, verb, type, link, date) {
  const text = `${verb.toLowerCase()}\n${type.toLowerCase()}\n${link}\n${date.toLowerCase()}\n\n`;
  return crypto.createHmac("sha256", Buffer.from(key, "base64")).update(text).digest("base64");
}

function checkAuth(req, pathname) {
  if (!args.key) return null;
  const header = req.headers.authorization;
  const date = req.headers["x-ms-date"];
  if (!header || !date) return "missing authorization or x-ms-date header";
  let token;
  try {
    token = new URLSearchParams(decodeURIComponent(header).replace(/\+/g, "%2B"));
  } catch (e) {
    return "malformed authorization header";
  }
  if (token.get("type") !== "master" || token.get("ver") !== "1.0") return "unsupported token type";
  const when = Date.parse(date);
  if (Number.isNaN(when) || Math.abs(Date.now() - when) > 15 * 60 * 1000) return "x-ms-date missing or off by more than 15 minutes";
  const { type, link } = resourceOf(pathname);
  const want = signature(args.key, req.method, type, link, date);
  const got = token.get("sig") || "";
  const a = Buffer.from(want);
  const b = Buffer.from(got);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
    return `The input authorization token can't serve the request. Server used the following payload to sign: '${req.method.toLowerCase()}\\n${type.toLowerCase()}\\n${link}\\n${date.toLowerCase()}\\n\\n'`;
  }
  return null;
}

// ---- queries inside one logical partition -------------------------------------------------

// Per container (Items): partition value -> its documents' _rids, in the order written.
// Kept by wrapping the package's _set and delete (replace is a delete then a _set).
const querying = new AsyncLocalStorage(); // {pk} of the request being handled, if it names one
const partitionKeyOf = (items, data) => String(items._getPartition(data));
const setItem = Items.prototype._set;
Items.prototype._set = function set(data) {
  const out = setItem.call(this, data);
  if (!this.byPartition) this.byPartition = new Map();
  const k = partitionKeyOf(this, data);
  if (!this.byPartition.has(k)) this.byPartition.set(k, new Set());
  this.byPartition.get(k).add(data._rid);
  return out;
};
const deleteItem = Items.prototype.delete;
Items.prototype.delete = function del(idOrRid, partition) {
  const data = this._item("/id", idOrRid, partition).read();
  deleteItem.call(this, idOrRid, partition);
  const rids = data && this.byPartition && this.byPartition.get(partitionKeyOf(this, data));
  if (rids) rids.delete(data._rid);
};
const queryItems = Items.prototype.query;
Items.prototype.query = function query(params, options) {
  const scope = querying.getStore();
  if (!scope || scope.pk === undefined) return queryItems.call(this, params, options);
  const all = this._data;
  const mine = new Map();
  for (const rid of (this.byPartition && this.byPartition.get(String(scope.pk))) || []) {
    if (all.has(rid)) mine.set(rid, all.get(rid));
  }
  this._data = mine; // synchronous: no other request runs until it is put back
  try {
    return queryItems.call(this, params, options);
  } finally {
    this._data = all;
  }
};

// ---- partition key ranges and the change feed ------------------------------------------

// Per container: LSN counter and, per document, {lsn, range}; per range, its writes in LSN
// order ({lsn, key}; an entry whose document was written again later or deleted is skipped),
// so a change-feed read costs its page, not the container (as on the service).
const feeds = new Map(); // "db/coll" -> {lsn, docs: Map(docKey -> {lsn, range, id, pk, ts}), heads: [], log: [[]]}
function feedOf(dbId, collId) {
  const k = `${dbId}/${collId}`;
  if (!feeds.has(k)) {
    feeds.set(k, { lsn: 0, docs: new Map(), heads: new Array(args.ranges).fill(0),
      log: Array.from({ length: args.ranges }, () => []) });
  }
  return feeds.get(k);
}

function rangeBounds(i) {
  const hex = n => (n === 0 ? "" : n >= 256 ? "FF" : n.toString(16).toUpperCase().padStart(2, "0"));
  return { min: hex(Math.floor((i * 256) / args.ranges)), max: hex(Math.floor(((i + 1) * 256) / args.ranges)) };
}

function rangeOfKey(pkValue) {
  const h = crypto.createHash("md5").update(JSON.stringify(pkValue === undefined ? null : pkValue)).digest();
  return Math.floor((h[0] * args.ranges) / 256);
}

function partitionPath(collection) {
  const c = collection.read();
  const paths = (c && c.partitionKey && c.partitionKey.paths) || [];
  return paths.length ? paths[0].slice(1).split("/") : null;
}

function valueAt(doc, path) {
  let v = doc;
  for (const p of path || []) v = v == null ? undefined : v[p];
  return v;
}

function recordWrite(dbId, collId, collection, method, status, body, docIdParam) {
  const f = feedOf(dbId, collId);
  const path = partitionPath(collection);
  if (method === "DELETE") {
    for (const [k, d] of f.docs) {
      if (d.id === docIdParam) {
        f.lsn += 1;
        f.heads[d.range] = f.lsn;
        f.docs.delete(k);
      }
    }
    return;
  }
  if (!body || typeof body.id !== "string") return;
  const pk = valueAt(body, path);
  const key = JSON.stringify([pk === undefined ? null : pk, body.id]);
  const range = rangeOfKey(pk);
  f.lsn += 1;
  f.heads[range] = f.lsn;
  f.docs.set(key, { lsn: f.lsn, range, id: body.id, pk, ts: Math.floor(Date.now() / 1000) });
  f.log[range].push({ lsn: f.lsn, key });
}

function changeFeed(req, res, collection, dbId, collId) {
  stats.changeFeedReads += 1;
  const f = feedOf(dbId, collId);
  let rangeId = req.headers["x-ms-documentdb-partitionkeyrangeid"];
  if (rangeId === undefined && args.ranges === 1) rangeId = "0";
  const range = Number(rangeId);
  if (!Number.isInteger(range) || range < 0 || range >= args.ranges || String(range) !== String(rangeId)) {
    return reply(res, 400, { code: "BadRequest", message: `unknown or missing partition key range '${rangeId}'` });
  }
  const inm = req.headers["if-none-match"];
  let after = 0;
  if (inm !== undefined && inm !== "*") {
    after = Number(String(inm).replace(/"/g, ""));
    if (!Number.isInteger(after) || after < 0) return reply(res, 400, { code: "BadRequest", message: `bad continuation ${inm}` });
  } else if (inm === "*") {
    after = f.lsn; // "from now"
  }
  // Ignored when If-None-Match is given (as documented for the REST API).
  let since = -Infinity;
  const ims = req.headers["if-modified-since"];
  if (inm === undefined && ims !== undefined) {
    const ms = Date.parse(ims);
    if (Number.isNaN(ms)) return reply(res, 400, { code: "BadRequest", message: `bad If-Modified-Since ${ims}` });
    since = Math.floor(ms / 1000);
  }
  let max = parseInt(req.headers["x-ms-max-item-count"] || "100", 10);
  if (!(max > 0)) max = Number.MAX_SAFE_INTEGER;
  const log = f.log[range];
  let lo = 0;
  let hi = log.length;
  while (lo < hi) { // the first write after the continuation
    const mid = (lo + hi) >> 1;
    if (log[mid].lsn <= after) lo = mid + 1;
    else hi = mid;
  }
  const page = [];
  for (let i = lo; i < log.length && page.length < max; i += 1) {
    const d = f.docs.get(log[i].key);
    if (d && d.lsn === log[i].lsn && d.ts > since) page.push(d); // each document's latest version only
  }
  const headers = { "x-ms-session-token": `${range}:-1#${f.heads[range]}` };
  if (page.length === 0) {
    stats.notModified += 1;
    headers.etag = `"${Math.max(after, f.heads[range])}"`;
    return reply(res, 304, null, headers, 1);
  }
  const docs = page.map(d => ({ ...collection.document(d.id, d.pk).read(), _lsn: d.lsn }));
  headers.etag = `"${page[page.length - 1].lsn}"`;
  headers["x-ms-item-count"] = String(docs.length);
  const bytes = docs.reduce((n, d) => n + JSON.stringify(d).length, 0);
  return reply(res, 200, { _rid: collection.read()._rid, Documents: docs, _count: docs.length }, headers,
    2 + bytes / 1024);
}

function pkranges(res, collection) {
  const c = collection.read();
  const list = [];
  for (let i = 0; i < args.ranges; i += 1) {
    const b = rangeBounds(i);
    list.push({ id: String(i), _rid: `${c._rid}${i}`, minInclusive: b.min, maxExclusive: b.max, ridPrefix: i,
      throughputFraction: 1 / args.ranges, status: "online", parents: [] });
  }
  return reply(res, 200, { _rid: c._rid, PartitionKeyRanges: list, _count: list.length },
    { "x-ms-item-count": String(list.length) }, 1);
}

// ---- request charges ---------------------------------------------------------------------

// A rough model of documented costs: about 1 RU to point-read 1 KB, about 5 RU to write
// 1 KB (default indexing), queries 2.5 RU plus a little per document returned. Real
// charges vary with indexing policy and document shape: measure on the account.
function charge(method, kind, status, body) {
  const kb = Math.max(1, JSON.stringify(body || {}).length / 1024);
  if (status >= 400 && status !== 404 && status !== 409 && status !== 412) return 0;
  if (kind === "query") return 2.5 + ((body && body._count) || 0) * 0.3;
  if (method === "GET") return kb;
  if (method === "DELETE") return 5;
  return 5 * kb + (status >= 400 ? 0 : 0.7);
}

function reply(res, status, body, headers = {}, ru = 1) {
  if (res.lostAnswer) {
    const f = res.lostAnswer;
    res.lostAnswer = null;
    return reply(res, f.status, { code: "Injected", message: "answer replaced by the test launcher" }, {}, 0);
  }
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader("content-type", "application/json");
  res.setHeader("x-ms-activity-id", crypto.randomUUID());
  res.setHeader("x-ms-request-charge", ru.toFixed(2));
  res.end(body == null ? "" : JSON.stringify(body));
}

// ---- transactional batches ---------------------------------------------------------------

function isTrue(v) {
  return String(v === undefined ? "" : v).toLowerCase() === "true";
}

async function transactionalBatch(req, res, collection, dbId, collId) {
  stats.batches += 1;
  const bad = message => reply(res, 400, { code: "BadRequest", message }, {}, 0);
  if (!isTrue(req.headers["x-ms-cosmos-batch-atomic"])) {
    return bad("this stand-in serves only atomic batches (x-ms-cosmos-batch-atomic: True)");
  }
  let ops;
  let pk;
  try {
    ops = await readJson(req);
    const h = JSON.parse(req.headers["x-ms-documentdb-partitionkey"] || "null");
    pk = Array.isArray(h) ? h[0] : h;
  } catch (e) {
    return bad("malformed batch body or x-ms-documentdb-partitionkey header");
  }
  if (pk === undefined || pk === null) return bad("a batch needs the x-ms-documentdb-partitionkey header");
  if (!Array.isArray(ops) || ops.length < 1 || ops.length > 100) return bad("a batch holds 1 to 100 operations");
  const path = partitionPath(collection);
  for (const op of ops) {
    if (!op || op.operationType !== "Create") {
      return bad(`operation type '${op && op.operationType}' is not served by this stand-in (Create only)`);
    }
    const body = op.resourceBody;
    if (!body || typeof body !== "object" || typeof body.id !== "string" || !body.id) return bad("an operation without an id");
    if (valueAt(body, path) !== pk) {
      return reply(res, 400, { code: "BadRequest", message: "an operation's partition key differs from the batch's" },
        { "x-ms-substatus": "1001" }, 0);
    }
  }
  // No await from here on: no other request sees a part of the batch.
  const created = [];
  let failed = -1;
  for (let i = 0; i < ops.length && failed < 0; i += 1) {
    try {
      created.push(collection.documents.create(ops[i].resourceBody));
    } catch (err) {
      if (!err.conflict) {
        for (const d of created) collection.documents.delete(d.id, pk); // all or nothing, also here
        throw err;
      }
      failed = i;
    }
  }
  if (failed >= 0) {
    for (const d of created) collection.documents.delete(d.id, pk);
    let ru = 0;
    for (let i = 0; i <= failed; i += 1) ru += charge("POST", "doc", 409, ops[i].resourceBody);
    const results = ops.map((_, i) => ({ statusCode: i === failed ? 409 : 424, requestCharge: 0 }));
    return reply(res, 207, results, {}, ru);
  }
  let ru = 0;
  const results = created.map(d => {
    recordWrite(dbId, collId, collection, "POST", 201, d);
    const c = charge("POST", "doc", 201, d);
    ru += c;
    return { statusCode: 201, requestCharge: c, eTag: d._etag, resourceBody: d };
  });
  return reply(res, 200, results, { "x-ms-session-token": `0:-1#${feedOf(dbId, collId).lsn}` }, ru);
}

// ---- server ------------------------------------------------------------------------------

let account;

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : {};
}

async function control(req, res, pathname) {
  if (pathname === "/_launcher/stats" && req.method === "GET") return reply(res, 200, stats);
  if (pathname === "/_launcher/faults" && req.method === "POST") {
    const f = await readJson(req);
    if (!Number.isInteger(f.status) || !Number.isInteger(f.count)) return reply(res, 400, { message: "need status and count" });
    fault = { probability: 1, ...f };
    return reply(res, 200, fault);
  }
  if (pathname === "/_launcher/faults" && req.method === "DELETE") {
    fault = null;
    return reply(res, 200, {});
  }
  return reply(res, 404, { message: "no such control" });
}

function injectFault(req, res) {
  if (!fault || fault.count <= 0) return false;
  if (fault.method && fault.method !== req.method) return false;
  if (Math.random() >= fault.probability) return false;
  fault.count -= 1;
  stats.faults += 1;
  if (fault.after) {
    res.lostAnswer = { status: fault.status };
    return false;
  }
  const headers = {};
  if (fault.status === 429) headers["x-ms-retry-after-ms"] = String(fault.retryAfterMs || 10);
  if (fault.subStatus) headers["x-ms-substatus"] = String(fault.subStatus);
  const code = { 429: "TooManyRequests", 503: "ServiceUnavailable", 449: "RetryWith", 408: "RequestTimeout" }[fault.status] || "Injected";
  reply(res, fault.status, { code, message: "injected by the test launcher" }, headers, 0);
  return true;
}

async function handle(req, res) {
  const pathname = new URL(req.url, "http://x").pathname.replace(/\/+$/, "") || "/";
  if (pathname.startsWith("/_launcher/")) return control(req, res, pathname);
  stats.requests += 1;
  if (args.latencyMs > 0) await new Promise(r => setTimeout(r, args.latencyMs));
  const authError = checkAuth(req, pathname);
  if (authError) {
    stats.unauthorized += 1;
    return reply(res, 401, { code: "Unauthorized", message: authError }, {}, 0);
  }
  if (injectFault(req, res)) return undefined;

  const m = pathname.match(/^\/dbs\/([^/]+)\/colls\/([^/]+)(?:\/(docs|pkranges)(?:\/([^/]+))?)?$/);
  const dbId = m && decodeURIComponent(m[1]);
  const collId = m && decodeURIComponent(m[2]);
  const collection = m ? account.database(dbId).collection(collId) : null;
  const exists = collection && collection.read();
  if (m && m[3] === "pkranges" && req.method === "GET") {
    if (!exists) return reply(res, 404, { code: "NotFound", message: "collection not found" });
    return pkranges(res, collection);
  }
  if (m && m[3] === "docs" && !m[4] && req.method === "GET" && req.headers["a-im"] !== undefined) {
    if (req.headers["a-im"] !== "Incremental feed") return reply(res, 400, { code: "BadRequest", message: "A-IM must be 'Incremental feed'" });
    if (!exists) return reply(res, 404, { code: "NotFound", message: "collection not found" });
    return changeFeed(req, res, collection, dbId, collId);
  }
  if (m && m[3] === "docs" && m[4] && req.method === "GET" && exists) {
    const docId = decodeURIComponent(m[4]);
    const path = partitionPath(collection);
    let pk;
    try {
      const h = JSON.parse(req.headers["x-ms-documentdb-partitionkey"] || "null");
      pk = Array.isArray(h) ? h[0] : h;
    } catch (e) {
      return reply(res, 400, { code: "BadRequest", message: "malformed x-ms-documentdb-partitionkey" });
    }
    if (path && pk === undefined) return reply(res, 400, { code: "BadRequest", message: "partition key header required" });
    const data = collection.document(docId, path ? pk : docId).read();
    if (!data || (path && valueAt(data, path) !== pk)) {
      return reply(res, 404, { code: "NotFound", message: "Entity with the specified id does not exist in the system." }, {}, 1);
    }
    return reply(res, 200, data, { etag: data._etag }, charge("GET", "read", 200, data));
  }

  if (m && m[3] === "docs" && !m[4] && req.method === "POST" && isTrue(req.headers["x-ms-cosmos-is-batch-request"])) {
    if (!exists) return reply(res, 404, { code: "NotFound", message: "collection not found" });
    return transactionalBatch(req, res, collection, dbId, collId);
  }
  const r = route(req);
  if (!r) return reply(res, 400, { message: "no route" });
  const [params, handler] = r;
  const isQueryRequest = req.headers["x-ms-documentdb-isquery"] || req.headers["content-type"] === "application/query+json";
  let scope = {};
  if (isQueryRequest && req.headers["x-ms-documentdb-partitionkey"] !== undefined) {
    try {
      const h = JSON.parse(req.headers["x-ms-documentdb-partitionkey"]);
      scope = { pk: Array.isArray(h) ? h[0] : h };
      // Scoped by the header, as the service does: the SQL need not name the partition key
      // (the package refuses such a query unless it may cross partitions).
      req.headers["x-ms-documentdb-query-enablecrosspartition"] = "true";
    } catch (e) {
      return reply(res, 400, { code: "BadRequest", message: "malformed x-ms-documentdb-partitionkey" });
    }
  }
  let body;
  try {
    body = await querying.run(scope, () => handler(account, req, res, params));
  } catch (err) {
    body = { code: "InternalServerError", message: err.message };
    res.statusCode = 500;
  }
  const status = res.statusCode;
  const isDocWrite = m && m[3] === "docs" && ["POST", "PUT", "PATCH", "DELETE"].includes(req.method) &&
    !req.headers["x-ms-documentdb-isquery"] && req.headers["content-type"] !== "application/query+json";
  if (isDocWrite && status >= 200 && status < 300) {
    recordWrite(dbId, collId, collection, req.method, status, body, m[4] && decodeURIComponent(m[4]));
  }
  const isQuery = req.headers["x-ms-documentdb-isquery"] || req.headers["content-type"] === "application/query+json";
  const headers = {};
  if (body && body._etag) headers.etag = body._etag;
  if (m && m[3] === "docs") {
    const f = feedOf(dbId, collId);
    headers["x-ms-session-token"] = `0:-1#${f.lsn}`;
  }
  return reply(res, status, body === undefined ? null : body, headers,
    charge(req.method, isQuery ? "query" : "doc", status, body));
}

const listener = (req, res) => {
  handle(req, res).catch(err => {
    if (!res.writableEnded) reply(res, 500, { code: "InternalServerError", message: String(err && err.message) });
  });
};
const server = args.tlsCert
  ? https.createServer({ cert: fs.readFileSync(args.tlsCert), key: fs.readFileSync(args.tlsKey) }, listener)
  : http.createServer(listener);
server.keepAliveTimeout = 30000;
server.listen(args.port, args.host, () => {
  const { port } = server.address();
  account = new Account(args.host, port);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
