// Tests of the Cosmos DB stand-in launcher's own behaviour (node --test).
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const path = require("node:path");
const readline = require("node:readline");

const KEY = crypto.randomBytes(64).toString("base64");

function start(extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, "launcher.js"), "--host", "127.0.0.1", "--port", "0",
      "--key", KEY, ...extra], { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => reject(new Error("launcher did not start")), 10000);
    readline.createInterface({ input: child.stdout }).once("line", line => {
      clearTimeout(timer);
      resolve({ child, base: `http://127.0.0.1:${JSON.parse(line).port}` });
    });
    child.once("error", reject);
  });
}

function auth(verb, pathname, key = KEY) {
  const segs = pathname.split("/").filter(Boolean);
  const type = segs.length % 2 ? segs[segs.length - 1] : segs[segs.length - 2] || "";
  const link = segs.length % 2 ? segs.slice(0, -1).join("/") : segs.join("/");
  const date = new Date().toUTCString();
  const text = `${verb.toLowerCase()}\n${type}\n${link}\n${date.toLowerCase()}\n\n`;
  const sig = crypto.createHmac("sha256", Buffer.from(key, "base64")).update(text).digest("base64");
  return { authorization: encodeURIComponent(`type=master&ver=1.0&sig=${sig}`), "x-ms-date": date, "x-ms-version": "2018-12-31" };
}

async function call(base, verb, pathname, { body, headers = {}, key } = {}) {
  const res = await fetch(base + pathname, {
    method: verb,
    headers: { ...auth(verb, pathname, key), "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

async function setup(base) {
  assert.equal((await call(base, "POST", "/dbs", { body: { id: "db" } })).status, 201);
  const r = await call(base, "POST", "/dbs/db/colls", { body: { id: "events", partitionKey: { paths: ["/streamId"], kind: "Hash" } } });
  assert.equal(r.status, 201);
}

function feed(base, range, etag, max) {
  const headers = { "a-im": "Incremental feed", "x-ms-documentdb-partitionkeyrangeid": String(range) };
  if (etag) headers["if-none-match"] = etag;
  if (max) headers["x-ms-max-item-count"] = String(max);
  return call(base, "GET", "/dbs/db/colls/events/docs", { headers });
}

test("signature check: a valid token passes, a wrong key or missing date gets 401", async () => {
  const { child, base } = await start();
  try {
    assert.equal((await call(base, "GET", "/dbs")).status, 200);
    const wrong = await call(base, "GET", "/dbs", { key: crypto.randomBytes(64).toString("base64") });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.message, /authorization token/);
    const res = await fetch(`${base}/dbs`, { headers: { authorization: auth("GET", "/dbs").authorization } });
    assert.equal(res.status, 401);
    // A token signed for another resource does not open this one.
    const h = auth("GET", "/dbs/other");
    assert.equal((await fetch(`${base}/dbs/db`, { headers: h })).status, 401);
  } finally {
    child.kill();
  }
});

test("missing document point read is 404, present one is 200 with its etag", async () => {
  const { child, base } = await start();
  try {
    await setup(base);
    const pk = { "x-ms-documentdb-partitionkey": JSON.stringify(["s1"]) };
    assert.equal((await call(base, "GET", "/dbs/db/colls/events/docs/nope", { headers: pk })).status, 404);
    const created = await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id: "s1:1", streamId: "s1" }, headers: pk });
    assert.equal(created.status, 201);
    const got = await call(base, "GET", "/dbs/db/colls/events/docs/s1:1", { headers: pk });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("etag"), created.body._etag);
    // The same id under another partition key is a different (missing) document.
    const other = { "x-ms-documentdb-partitionkey": JSON.stringify(["s2"]) };
    assert.equal((await call(base, "GET", "/dbs/db/colls/events/docs/s1:1", { headers: other })).status, 404);
    // A second create of the same id conflicts.
    assert.equal((await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id: "s1:1", streamId: "s1" }, headers: pk })).status, 409);
  } finally {
    child.kill();
  }
});

test("incremental change feed per range with continuation, max item count and 304", async () => {
  const { child, base } = await start(["--ranges", "4"]);
  try {
    await setup(base);
    const ranges = await call(base, "GET", "/dbs/db/colls/events/pkranges");
    assert.equal(ranges.status, 200);
    assert.deepEqual(ranges.body.PartitionKeyRanges.map(r => r.id), ["0", "1", "2", "3"]);
    assert.equal(ranges.body.PartitionKeyRanges[0].minInclusive, "");
    assert.equal(ranges.body.PartitionKeyRanges[3].maxExclusive, "FF");
    const written = [];
    for (let i = 0; i < 40; i += 1) {
      const s = `s${i % 10}`;
      const id = `${s}:${Math.floor(i / 10) + 1}`;
      const r = await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id, streamId: s }, headers: { "x-ms-documentdb-partitionkey": JSON.stringify([s]) } });
      assert.equal(r.status, 201);
      written.push(id);
    }
    const seen = [];
    const etags = [];
    const rangeOfStream = new Map();
    for (let range = 0; range < 4; range += 1) {
      let etag;
      for (;;) {
        const r = await feed(base, range, etag, 3);
        if (r.status === 304) {
          assert.ok(r.headers.get("etag"));
          break;
        }
        assert.equal(r.status, 200);
        assert.ok(r.body.Documents.length <= 3);
        assert.equal(r.headers.get("x-ms-item-count"), String(r.body.Documents.length));
        let last = 0;
        for (const d of r.body.Documents) {
          assert.ok(d._lsn > last, "oldest first");
          last = d._lsn;
          seen.push(d.id);
          if (rangeOfStream.has(d.streamId)) assert.equal(rangeOfStream.get(d.streamId), range, "a stream lives in one range");
          rangeOfStream.set(d.streamId, range);
        }
        etag = r.headers.get("etag");
        assert.equal(etag, `"${last}"`);
      }
      etags.push(etag);
    }
    assert.deepEqual(seen.slice().sort(), written.slice().sort(), "every document once over all ranges");
    assert.ok(new Set(rangeOfStream.values()).size > 1, "streams spread over several ranges");
    // Nothing new: 304 on every range; a new write shows up only after its range's continuation.
    for (let range = 0; range < 4; range += 1) assert.equal((await feed(base, range, etags[range])).status, 304);
    await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id: "s3:5", streamId: "s3" }, headers: { "x-ms-documentdb-partitionkey": JSON.stringify(["s3"]) } });
    let found = 0;
    for (let range = 0; range < 4; range += 1) {
      const r = await feed(base, range, etags[range]);
      if (r.status === 200) {
        assert.deepEqual(r.body.Documents.map(d => d.id), ["s3:5"]);
        found += 1;
      }
    }
    assert.equal(found, 1);
    // Streams in different ranges: the session token names the range and its latest LSN.
    const r0 = await feed(base, 0);
    assert.match(r0.headers.get("x-ms-session-token") || "", /^0:-1#\d+$/);
    assert.equal((await feed(base, 9)).status, 400);
  } finally {
    child.kill();
  }
});

test("change feed from a time: If-Modified-Since without If-None-Match returns only later writes", async () => {
  const { child, base } = await start();
  try {
    await setup(base);
    const write = id => call(base, "POST", "/dbs/db/colls/events/docs", { body: { id, streamId: "s" }, headers: { "x-ms-documentdb-partitionkey": JSON.stringify(["s"]) } });
    assert.equal((await write("s:1")).status, 201);
    await new Promise(r => setTimeout(r, 1100));
    const since = new Date(Math.floor(Date.now() / 1000) * 1000);  // the second after s:1's
    await new Promise(r => setTimeout(r, 1100));
    assert.equal((await write("s:2")).status, 201);
    const get = extra => call(base, "GET", "/dbs/db/colls/events/docs",
      { headers: { "a-im": "Incremental feed", "x-ms-documentdb-partitionkeyrangeid": "0", ...extra } });
    const r = await get({ "if-modified-since": since.toUTCString() });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.Documents.map(d => d.id), ["s:2"], "only the write after the time");
    // Its continuation goes on from there; with If-None-Match the time is ignored.
    assert.equal((await get({ "if-none-match": r.headers.get("etag") })).status, 304);
    const all = await get({ "if-none-match": "\"0\"", "if-modified-since": since.toUTCString() });
    assert.deepEqual(all.body.Documents.map(d => d.id), ["s:1", "s:2"]);
    // After the last write: nothing, and an etag to go on from.
    const none = await get({ "if-modified-since": new Date(Date.now() + 2000).toUTCString() });
    assert.equal(none.status, 304);
    assert.ok(none.headers.get("etag"));
    assert.equal((await get({ "if-modified-since": "not a date" })).status, 400);
  } finally {
    child.kill();
  }
});

test("fault injection: the next N requests answer 429 with x-ms-retry-after-ms, then normal", async () => {
  const { child, base } = await start();
  try {
    const set = await fetch(`${base}/_launcher/faults`, { method: "POST", body: JSON.stringify({ status: 429, count: 2, retryAfterMs: 15 }) });
    assert.equal(set.status, 200);
    const a = await call(base, "GET", "/dbs");
    assert.equal(a.status, 429);
    assert.equal(a.headers.get("x-ms-retry-after-ms"), "15");
    assert.equal((await call(base, "GET", "/dbs")).status, 429);
    assert.equal((await call(base, "GET", "/dbs")).status, 200);
    await fetch(`${base}/_launcher/faults`, { method: "POST", body: JSON.stringify({ status: 503, count: 1, method: "POST" }) });
    assert.equal((await call(base, "GET", "/dbs")).status, 200);  // GET does not match
    assert.equal((await call(base, "POST", "/dbs", { body: { id: "x" } })).status, 503);
    let stats = await (await fetch(`${base}/_launcher/stats`)).json();
    assert.equal(stats.faults, 3);
    // "after": the request is carried out, only its answer is replaced.
    await fetch(`${base}/_launcher/faults`, { method: "POST", body: JSON.stringify({ status: 503, count: 1, after: true }) });
    assert.equal((await call(base, "POST", "/dbs", { body: { id: "lost" } })).status, 503);
    assert.equal((await call(base, "GET", "/dbs/lost")).status, 200);
    stats = await (await fetch(`${base}/_launcher/stats`)).json();
    assert.equal(stats.faults, 4);
  } finally {
    child.kill();
  }
});

test("request charges follow the documented rough costs: writes cost more than reads", async () => {
  const { child, base } = await start();
  try {
    await setup(base);
    const pk = { "x-ms-documentdb-partitionkey": JSON.stringify(["s"]) };
    const w = await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id: "s:1", streamId: "s" }, headers: pk });
    const r = await call(base, "GET", "/dbs/db/colls/events/docs/s:1", { headers: pk });
    assert.ok(Number(w.headers.get("x-ms-request-charge")) >= 5);
    assert.ok(Number(r.headers.get("x-ms-request-charge")) >= 1);
    assert.ok(Number(w.headers.get("x-ms-request-charge")) > Number(r.headers.get("x-ms-request-charge")));
  } finally {
    child.kill();
  }
});

test("transactional batch: all or nothing on one logical partition, in the change feed only once written", async () => {
  const { child, base } = await start();
  try {
    assert.equal((await call(base, "POST", "/dbs", { body: { id: "db" } })).status, 201);
    const spec = { id: "events", partitionKey: { paths: ["/streamId"], kind: "Hash" }, uniqueKeyPolicy: { uniqueKeys: [{ paths: ["/k"] }] } };
    assert.equal((await call(base, "POST", "/dbs/db/colls", { body: spec })).status, 201);
    const batch = (ops, { pk = "s", atomic = "True" } = {}) => call(base, "POST", "/dbs/db/colls/events/docs", {
      body: ops,
      headers: { "x-ms-cosmos-is-batch-request": "True", "x-ms-cosmos-batch-atomic": atomic, "x-ms-documentdb-partitionkey": JSON.stringify([pk]) }
    });
    const create = (id, k, stream = "s") => ({ operationType: "Create", resourceBody: { id, streamId: stream, k } });

    const ok = await batch([create("s:1", "a"), create("s:2", "b"), create("s:3", "c")]);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body.map(r => r.statusCode), [201, 201, 201]);
    assert.deepEqual(ok.body.map(r => r.resourceBody.id), ["s:1", "s:2", "s:3"]);
    const sum = ok.body.reduce((n, r) => n + r.requestCharge, 0);
    assert.ok(sum >= 15);
    assert.equal(Number(ok.headers.get("x-ms-request-charge")).toFixed(2), sum.toFixed(2));
    const first = await feed(base, 0);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.Documents.map(d => d.id), ["s:1", "s:2", "s:3"]);

    // A unique-key collision in the middle: nothing of the batch is written or fed.
    const clash = await batch([create("s:4", "d"), create("s:5", "a"), create("s:6", "e")]);
    assert.equal(clash.status, 207);
    assert.deepEqual(clash.body.map(r => r.statusCode), [424, 409, 424]);
    const pkh = { "x-ms-documentdb-partitionkey": JSON.stringify(["s"]) };
    assert.equal((await call(base, "GET", "/dbs/db/colls/events/docs/s:4", { headers: pkh })).status, 404);
    assert.equal((await feed(base, 0, first.headers.get("etag"))).status, 304);
    // The key the failed batch held for a moment is free again; an id that exists collides.
    assert.equal((await batch([create("s:4", "d")])).status, 200);
    assert.deepEqual((await batch([create("s:3", "z")])).body.map(r => r.statusCode), [409]);

    // Refused outright (400): another partition's document, too many operations, a
    // non-atomic batch, an operation this stand-in does not serve.
    const mismatch = await batch([create("t:1", "t", "t")]);
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.headers.get("x-ms-substatus"), "1001");
    const many = Array.from({ length: 101 }, (_, i) => create(`m:${i}`, `m${i}`, "s"));
    assert.equal((await batch(many)).status, 400);
    assert.equal((await batch([create("s:9", "q")], { atomic: "False" })).status, 400);
    assert.equal((await batch([{ operationType: "Upsert", resourceBody: { id: "s:9", streamId: "s" } }])).status, 400);
    const all = await feed(base, 0);
    assert.deepEqual(all.body.Documents.map(d => d.id), ["s:1", "s:2", "s:3", "s:4"]);
  } finally {
    child.kill();
  }
});

test("a query with a partition key header reads only that logical partition", async () => {
  const { child, base } = await start();
  try {
    await setup(base);
    for (const [id, stream] of [["s:1", "s"], ["t:1", "t"], ["s:2", "s"], ["t:2", "t"]]) {
      const pk = { "x-ms-documentdb-partitionkey": JSON.stringify([stream]) };
      assert.equal((await call(base, "POST", "/dbs/db/colls/events/docs", { body: { id, streamId: stream, n: 1 }, headers: pk })).status, 201);
    }
    const query = (headers, sql = "SELECT * FROM c WHERE c.n = 1") => call(base, "POST", "/dbs/db/colls/events/docs", {
      body: { query: sql, parameters: [] },
      headers: { "x-ms-documentdb-isquery": "True", "content-type": "application/query+json", ...headers }
    });
    const s = await query({ "x-ms-documentdb-partitionkey": JSON.stringify(["s"]) });
    assert.equal(s.status, 200);
    assert.deepEqual(s.body.Documents.map(d => d.id), ["s:1", "s:2"]);
    const none = await query({ "x-ms-documentdb-partitionkey": JSON.stringify(["u"]) });
    assert.deepEqual(none.body.Documents, []);
    // Deleted documents leave the partition; a cross-partition query still sees them all.
    const pkT = { "x-ms-documentdb-partitionkey": JSON.stringify(["t"]) };
    assert.equal((await call(base, "DELETE", "/dbs/db/colls/events/docs/t:1", { headers: pkT })).status, 204);
    assert.deepEqual((await query(pkT)).body.Documents.map(d => d.id), ["t:2"]);
    const all = await query({ "x-ms-documentdb-query-enablecrosspartition": "True" });
    assert.deepEqual(all.body.Documents.map(d => d.id).sort(), ["s:1", "s:2", "t:2"]);
  } finally {
    child.kill();
  }
});
