// socksgate status page: reads the admin API with the token typed in (kept in
// sessionStorage, so it goes when the tab closes). No libraries, nothing from elsewhere.
'use strict';

const TOKEN_KEY = 'socksgate.token';
const POLL_MS = 1000;
const SAMPLES = 120; // two minutes of bytes/s
const $ = (id) => document.getElementById(id);

let timer;
let round = 0; // numbers the refreshes: only the latest may draw the page and schedule the next
let last; // the previous /api/stats answer
const rates = []; // { up, down } bytes/s

/**
 * The token as header text: fetch sends only code points below 256, each as one byte, so
 * the token's UTF-8 bytes go one per character, as curl sends them and the gateway reads them.
 */
function headerText(token) {
  return String.fromCharCode(...new TextEncoder().encode(token));
}

/** The answer's JSON and its headers; throws for a refusal. */
async function apiAnswer(method, path, body) {
  const headers = { authorization: `Bearer ${headerText(sessionStorage.getItem(TOKEN_KEY) ?? '')}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) throw Object.assign(new Error('wrong API token'), { unauthorized: true });
  if (!res.ok) throw new Error(data.error ?? `${method} ${path}: HTTP ${res.status}`);
  return { data, headers: res.headers };
}

const api = async (method, path, body) => (await apiAnswer(method, path, body)).data;

/** /api/stats, with how many workers its totals cover ("1/2"; null without workers). */
async function readStats() {
  const { data, headers } = await apiAnswer('GET', '/api/stats');
  return { ...data, workers: headers.get('x-socksgate-workers') };
}

function say(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A table cell: text only (names come from configs and clients, never as HTML). */
function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function button(label, onClick) {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', () => onClick().then(tick, (e) => say(e.message, true)));
  td.append(b);
  return td;
}

function fill(tbody, rows, columns) {
  const trs = rows.map((r) => {
    const tr = document.createElement('tr');
    tr.append(...r);
    return tr;
  });
  if (trs.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('none', 'empty');
    td.colSpan = columns;
    tr.append(td);
    trs.push(tr);
  }
  tbody.replaceChildren(...trs);
}

function health(m) {
  if (m.banned_until) return cell(`banned until ${new Date(m.banned_until).toLocaleTimeString()}`, 'banned');
  return m.healthy ? cell('healthy', 'ok') : cell(`ejected${m.ejected_for_ms ? ` (${Math.ceil(m.ejected_for_ms / 1000)} s)` : ''}`, 'bad');
}

const latency = (m) => cell(m.latency_ms === null ? '–' : `${Math.round(m.latency_ms)} ms`, 'num');

function renderPools(pools) {
  const host = $('pools');
  const parts = pools.map((pool) => {
    const h = document.createElement('h3');
    h.textContent = `${pool.name} (${pool.strategy})`;
    const table = document.createElement('table');
    table.dataset.pool = pool.name;
    table.innerHTML = '<thead><tr><th>member</th><th>health</th><th>latency</th><th>active</th><th>attempts</th><th>failures</th><th></th></tr></thead><tbody></tbody>';
    const path = (m) => `/api/upstreams/${encodeURIComponent(pool.name)}/members/${encodeURIComponent(m.name)}/ban`;
    fill(table.tBodies[0], pool.members.map((m) => [
      cell(m.name, 'member'), health(m), latency(m), cell(m.active, 'num'), cell(m.attempts, 'num'), cell(m.failures, 'num'),
      m.banned_until
        ? button('Unban', () => api('DELETE', path(m)))
        : button('Ban', () => api('POST', path(m), { for: $('ban-for').value || '10m' })),
    ]), 7);
    return [h, table];
  });
  if (parts.length === 0) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'no pools configured';
    parts.push([p]);
  }
  host.replaceChildren(...parts.flat());
}

function renderUpstreams(list) {
  fill($('upstreams').tBodies[0], list.map((u) => [
    cell(u.name), cell(u.type), u.healthy ? cell('healthy', 'ok') : cell('failing', 'bad'), latency(u),
    cell(u.active, 'num'), cell(u.attempts, 'num'), cell(u.failures, 'num'),
  ]), 7);
}

function renderRules(stats) {
  fill($('rules').tBodies[0], stats.rules.map((r) => [cell(r.rule), cell(r.matches, 'num'), cell(bytes(r.up), 'num'), cell(bytes(r.down), 'num')]), 4);
}

function renderConnections(list) {
  $('open-count').textContent = `(${list.length})`;
  fill($('connections').tBodies[0], list.map((c) => [
    cell(c.id, 'num'), cell(c.client), cell(c.user ?? '–'), cell(c.protocol ?? '–'), cell(c.command ?? '–'),
    cell(c.destination ?? '–'), cell(c.rule ?? '–'), cell(c.member ?? '–'),
    cell(bytes(c.bytes.up), 'num'), cell(bytes(c.bytes.down), 'num'), cell(`${Math.round(c.age)} s`, 'num'),
    button('Kill', () => api('DELETE', `/api/connections/${c.id}`)),
  ]), 12);
}

function record(stats) {
  // Totals that cover other workers than the previous ones (one did not answer in time, or
  // answers again) differ by that worker's whole count, not by traffic: no rate from those two.
  if (last && stats.time > last.time && stats.workers === last.workers) {
    const s = (stats.time - last.time) / 1000;
    // A connection moving from "open" to "finished" can shift a few handshake bytes: never below 0.
    rates.push({ up: Math.max(0, (stats.bytes.up - last.bytes.up) / s), down: Math.max(0, (stats.bytes.down - last.bytes.down) / s) });
    if (rates.length > SAMPLES) rates.shift();
  }
  last = stats;
  const now = rates[rates.length - 1];
  $('rate').textContent = now ? `${bytes(now.up)}/s up, ${bytes(now.down)}/s down` : '';
}

function drawChart() {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 900;
  const h = canvas.clientHeight || 180;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1024, ...rates.map((r) => Math.max(r.up, r.down)));
  const top = 16;
  const plot = h - top - 4;
  const yOf = (v) => h - 4 - (v / max) * plot;
  g.strokeStyle = '#ececea';
  g.lineWidth = 1;
  for (const f of [0.25, 0.5, 0.75, 1]) {
    g.beginPath();
    g.moveTo(0, Math.round(yOf(max * f)) + 0.5);
    g.lineTo(w, Math.round(yOf(max * f)) + 0.5);
    g.stroke();
  }
  g.fillStyle = '#6b6b70';
  g.font = '11px system-ui, sans-serif';
  g.fillText(`${bytes(max)}/s`, 4, 12);
  g.fillText('last 2 minutes', w - 84, 12);
  const css = getComputedStyle(document.documentElement);
  const xOf = (i) => w - (rates.length - 1 - i) * (w / (SAMPLES - 1));
  // Down is usually the bigger one: drawn filled underneath, up as a line on top.
  for (const [key, color, fill] of [['down', css.getPropertyValue('--down'), true], ['up', css.getPropertyValue('--up'), false]]) {
    if (rates.length < 2) break;
    g.beginPath();
    rates.forEach((r, i) => (i === 0 ? g.moveTo(xOf(i), yOf(r[key])) : g.lineTo(xOf(i), yOf(r[key]))));
    g.strokeStyle = color.trim() || '#333';
    g.lineWidth = 1.5;
    g.stroke();
    if (fill) {
      g.lineTo(xOf(rates.length - 1), h - 4);
      g.lineTo(xOf(0), h - 4);
      g.closePath();
      g.globalAlpha = 0.15;
      g.fillStyle = g.strokeStyle;
      g.fill();
      g.globalAlpha = 1;
    }
  }
}

async function tick() {
  clearTimeout(timer);
  const mine = ++round;
  try {
    const [upstreams, connections, stats] = await Promise.all([api('GET', '/api/upstreams'), api('GET', '/api/connections'), readStats()]);
    if (mine !== round) return; // overtaken by a newer refresh, or the token was forgotten meanwhile
    renderPools(upstreams.pools);
    renderUpstreams(upstreams.upstreams);
    renderConnections(connections);
    record(stats);
    renderRules(stats);
    drawChart();
    $('main').hidden = false;
    $('logout').hidden = false;
    say(`Connected. ${stats.connections.open} open, ${stats.connections.finished} finished connections. Updated ${new Date(stats.time).toLocaleTimeString()}.`);
    timer = setTimeout(tick, POLL_MS);
  } catch (e) {
    if (mine !== round) return;
    if (e.unauthorized) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('main').hidden = true;
      say('Wrong API token: type it again.', true);
      return;
    }
    say(`${e.message}; retrying`, true);
    timer = setTimeout(tick, POLL_MS * 3);
  }
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('token').value = '';
  say('Connecting…');
  tick();
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  round++; // a refresh under way ends unseen
  $('main').hidden = true;
  $('logout').hidden = true;
  say('Token forgotten.');
});
if (sessionStorage.getItem(TOKEN_KEY)) tick();
