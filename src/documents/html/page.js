// The session page: reads the JSON embedded by `export --format html` and
// draws it. Everything is built with DOM calls and textContent (never
// innerHTML with data), and everything that grows with the session (timeline
// bars, event rows) is drawn only for what is on screen.
(function () {
  'use strict';

  // Event arrays, in the order html.rs writes them.
  var ID = 0, T = 1, TYPE = 2, CAT = 3, TOOL = 4, AGENT = 5, DELEG = 6, USE = 7, PROMPT = 8, COST = 9, DATA = 10;

  var started = performance.now();
  var dataScript = document.getElementById('session-data');
  var D = JSON.parse(dataScript.textContent);
  // Parsed once: the text (tens of MB for a long session) need not stay in the DOM.
  dataScript.textContent = '';
  var S = D.session || {};
  var M = S.metrics || {};
  var EV = D.events || [];
  var DL = D.delegations || [];

  // ---------- small helpers ----------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      parent.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return parent;
  }
  function $(id) { return document.getElementById(id); }
  function num(n) { return n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'); }
  function usd(c) {
    if (c === null || c === undefined) return '—';
    return '$' + (c >= 10 ? c.toFixed(2) : c.toFixed(4));
  }
  function dur(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '—';
    ms = Math.max(0, ms);
    if (ms < 1000) return Math.round(ms) + 'ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1).replace(/\.?0+$/, '') + 's';
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }
  function clock(ms) {
    if (ms === null || ms === undefined) return '—';
    return new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC');
  }
  function short(s, n) {
    s = s === null || s === undefined ? '' : String(s);
    s = s.replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }
  function tokSum(t) { return t ? (t.input || 0) + (t.output || 0) + (t.cache_creation || 0) + (t.cache_read || 0) : 0; }
  function metric(name, value, text, cls) {
    var e = el('span', cls || 'num', text);
    e.setAttribute('data-metric', name);
    e.setAttribute('data-value', value === null || value === undefined ? '' : String(value));
    return e;
  }
  function str(v) { return typeof v === 'string' ? v : null; }

  // ---------- model: lanes, tool calls, turns ----------
  var PALETTE = ['#0ea5e9', '#db2777', '#16a34a', '#ea580c', '#7c3aed', '#ca8a04', '#0d9488', '#2563eb', '#9333ea', '#65a30d'];
  var byAgent = {}, byDeleg = {};
  var lanes = [{ key: 'main', name: 'main thread', d: null, depth: 0, color: 'var(--accent)', calls: [], events: 0, maxDur: 0 }];
  (function () {
    var children = {}, roots = [];
    DL.forEach(function (d) {
      if (d.agent_id) byAgent[d.agent_id] = d;
      byDeleg[d.id] = d;
    });
    DL.forEach(function (d) {
      var p = d.parent_agent_id && byAgent[d.parent_agent_id];
      if (p && p !== d) (children[p.id] = children[p.id] || []).push(d); else roots.push(d);
    });
    var typeCount = {};
    function visit(d, depth) {
      if (d.lane !== undefined) return;
      typeCount[d.agent_type] = (typeCount[d.agent_type] || 0) + 1;
      d.lane = lanes.length;
      lanes.push({
        key: d.agent_id || ('d' + d.id), name: d.agent_type || 'sub-agent', d: d, depth: Math.min(depth, 2),
        color: PALETTE[(d.lane - 1) % PALETTE.length], calls: [], events: 0, maxDur: 0
      });
      (children[d.id] || []).forEach(function (c) { visit(c, depth + 1); });
    }
    roots.forEach(function (d) { visit(d, 0); });
    DL.forEach(function (d) { visit(d, 0); });
  })();

  function isCallEvent(type) { return type === 'PreToolUse' || type === 'PostToolUse' || type === 'PostToolUseFailure'; }
  function laneOf(e) {
    var a = e[AGENT];
    if (a && byAgent[a]) return byAgent[a].lane;
    if (e[CAT] === 'delegation' && isCallEvent(e[TYPE])) return 0; // the parent's Agent/Task call
    var d = e[DELEG];
    if (d !== null && byDeleg[d]) return byDeleg[d].lane;
    return 0;
  }
  function kindOf(tool, cat) {
    if (cat === 'delegation' || tool === 'Agent' || tool === 'Task') return 'agent';
    if (tool === 'Bash' || tool === 'BashOutput' || tool === 'KillShell') return 'bash';
    if (cat === 'file' || /^(Read|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep|LS)$/.test(tool || '')) return 'file';
    if (cat === 'todo' || /^Task(Create|Update|List|Get)$|^TodoWrite$/.test(tool || '')) return 'todo';
    return 'other';
  }
  function errorOf(data) {
    if (!data) return null;
    var e = data.error;
    if (typeof e === 'string') return e;
    if (e && typeof e === 'object') return e.message || JSON.stringify(e);
    var r = data.tool_response;
    if (r && typeof r === 'object' && typeof r.error === 'string') return r.error;
    return null;
  }

  var laneIx = new Int32Array(EV.length);
  var calls = [], callByUse = {}, pending = {}, failures = [];
  var tMin = Infinity, tMax = -Infinity;
  function span(t) { if (t !== null && t !== undefined) { if (t < tMin) tMin = t; if (t > tMax) tMax = t; } }
  var eventById = {};
  for (var i = 0; i < EV.length; i++) {
    var e = EV[i];
    var ln = laneOf(e);
    laneIx[i] = ln;
    lanes[ln].events++;
    eventById[e[ID]] = i;
    var type = e[TYPE];
    if (!isCallEvent(type)) continue;
    var key = e[USE], pk = ln + '|' + (e[TOOL] || '');
    if (type === 'PreToolUse') {
      var c = { ix: calls.length, start: i, end: -1, t0: e[T], t1: null, lane: ln, tool: e[TOOL] || '?', kind: kindOf(e[TOOL], e[CAT]), status: 'running', error: null, use: key };
      calls.push(c);
      if (key) callByUse[key] = c; else (pending[pk] = pending[pk] || []).push(c);
      span(e[T]);
    } else {
      var c2 = key ? callByUse[key] : null;
      if (!c2 && !key && pending[pk] && pending[pk].length) c2 = pending[pk].shift();
      if (!c2 || c2.end >= 0) {
        c2 = { ix: calls.length, start: -1, end: i, t0: e[T], t1: e[T], lane: ln, tool: e[TOOL] || '?', kind: kindOf(e[TOOL], e[CAT]), status: 'ok', error: null, use: key };
        calls.push(c2);
        if (key) callByUse[key] = c2;
      }
      c2.end = i;
      c2.t1 = e[T];
      var err = errorOf(e[DATA]);
      c2.status = type === 'PostToolUseFailure' ? 'failed' : 'ok';
      if (c2.status === 'failed') { c2.error = err || 'failed'; failures.push(c2); }
      span(e[T]);
    }
  }
  DL.forEach(function (d) { span(d.start_ms); span(d.end_ms); });
  var sessionEnd = S.end_ms || S.last_ms;
  if (!isFinite(tMin)) { tMin = S.start_ms || 0; tMax = sessionEnd || tMin + 1000; }
  calls.forEach(function (c) {
    if (c.t1 === null) c.t1 = Math.max(c.t0, sessionEnd && sessionEnd >= c.t0 ? sessionEnd : tMax);
    if (c.t0 === null) c.t0 = c.t1;
    lanes[c.lane].calls.push(c);
  });
  // Calls that overlap in one lane (parallel tool calls) get rows of their own.
  var MAX_ROWS = 4;
  lanes.forEach(function (l) {
    l.calls.sort(function (a, b) { return a.t0 - b.t0; });
    var ends = [];
    l.calls.forEach(function (c) {
      if (c.t1 - c.t0 > l.maxDur) l.maxDur = c.t1 - c.t0;
      var r = 0;
      while (r < ends.length && ends[r] > c.t0) r++;
      if (r >= MAX_ROWS) r = MAX_ROWS - 1;
      ends[r] = Math.max(ends[r] || 0, c.t1);
      c.row = r;
    });
    l.rows = Math.max(1, ends.length);
  });

  // Turns: a person's prompt and what followed until the next one.
  var turns = [], turnByPrompt = {};
  function promptText(d) { return d ? str(d.prompt) || str(d.prompt_text) || str(d.message) : null; }
  for (var j = 0; j < EV.length; j++) {
    var ev = EV[j];
    if (ev[TYPE] !== 'UserPromptSubmit') continue;
    var text = promptText(ev[DATA]);
    var person = text !== null && !(ev[DATA] && ev[DATA].not_a_person === true) && !/^\s*<task-notification>/.test(text);
    if (!person) continue;
    var tr = { n: 0, ev: j, pid: ev[PROMPT], t0: ev[T], t1: null, prompt: text, response: null, tokens: { input: 0, output: 0, cache_creation: 0, cache_read: 0 }, cost: 0, costKnown: true, api: 0, calls: [], failed: 0, agents: [] };
    turns.push(tr);
    span(ev[T]);
    if (tr.pid) turnByPrompt[tr.pid] = tr;
  }
  turns.sort(function (a, b) { return a.t0 - b.t0; });
  turns.forEach(function (t, k) { t.n = k + 1; });
  function turnAt(t) {
    var lo = 0, hi = turns.length - 1, found = null;
    while (lo <= hi) { var mid = (lo + hi) >> 1; if (turns[mid].t0 <= t) { found = turns[mid]; lo = mid + 1; } else hi = mid - 1; }
    return found || turns[0] || null;
  }
  function turnOf(e) { return (e[PROMPT] && turnByPrompt[e[PROMPT]]) || (e[T] !== null ? turnAt(e[T]) : null); }
  var apiCalls = 0;
  for (var k = 0; k < EV.length; k++) {
    var x = EV[k], ty = x[TYPE];
    if (ty !== 'ApiCall' && ty !== 'Stop' && ty !== 'SubagentStart') continue;
    var turn = turnOf(x);
    if (ty === 'ApiCall') {
      apiCalls++;
      if (!turn) continue;
      var u = (x[DATA] && x[DATA].usage) || {};
      turn.tokens.input += u.input_tokens || 0;
      turn.tokens.output += u.output_tokens || 0;
      turn.tokens.cache_creation += u.cache_creation_input_tokens || 0;
      turn.tokens.cache_read += u.cache_read_input_tokens || 0;
      turn.api++;
      if (x[COST] === null) turn.costKnown = false; else turn.cost += x[COST];
    } else if (ty === 'Stop' && turn) {
      var d0 = x[DATA] || {};
      turn.response = str(d0.last_assistant_message) || str(d0.response) || str(d0.final_response) || turn.response;
      if (turn.t1 === null || x[T] > turn.t1) turn.t1 = x[T];
      span(x[T]);
    } else if (ty === 'SubagentStart' && turn && x[AGENT] && byAgent[x[AGENT]]) {
      turn.agents.push(byAgent[x[AGENT]]);
    }
  }
  calls.forEach(function (c) {
    var e0 = EV[c.start >= 0 ? c.start : c.end];
    var t = turnOf(e0);
    if (t) { t.calls.push(c); if (c.status === 'failed') t.failed++; }
  });
  turns.forEach(function (t, k) {
    if (t.t1 === null) t.t1 = k + 1 < turns.length ? turns[k + 1].t0 : tMax;
    t.calls.sort(function (a, b) { return a.t0 - b.t0; });
  });
  if (tMax <= tMin) tMax = tMin + 1000;

  // Files: what each lane wrote or read, by path.
  var files = {}, fileOrder = [];
  (M.files_modified || []).forEach(function (f) { files[f] = { path: f, written: true, lanes: {} }; fileOrder.push(f); });
  calls.forEach(function (c) {
    if (c.kind !== 'file' || c.start < 0) return;
    var inp = (EV[c.start][DATA] || {}).tool_input || {};
    var p = str(inp.file_path) || str(inp.notebook_path) || str(inp.path);
    if (!p) return;
    if (!files[p]) { files[p] = { path: p, written: false, lanes: {} }; fileOrder.push(p); }
    files[p].lanes[c.lane] = (files[p].lanes[c.lane] || 0) + 1;
  });

  // ---------- header and cards ----------
  function laneChip(ln) {
    var l = lanes[ln];
    var e = el('span', 'lane-chip');
    var dot = el('i');
    dot.style.background = l.color;
    add(e, dot, l.name);
    return e;
  }
  (function header() {
    var top = $('top');
    var id = S.session_id || '';
    var status = (S.metadata && S.metadata.status) || (S.end_time ? 'completed' : 'active');
    var h1 = el('h1');
    add(h1, 'Session ' + id.slice(0, 8), el('span', 'badge ' + (status === 'completed' ? 'ok' : ''), status));
    if (S.initial_prompt) add(h1, el('span', 'prompt', short(S.initial_prompt, 140)));
    var meta = el('div', 'meta');
    function m(label, value) { if (value) add(meta, add(el('span'), label + ' ', el('b', null, value))); }
    m('id', id);
    m('directory', S.working_directory);
    m('branch', S.git_branch && S.git_branch !== 'Unknown' ? S.git_branch : null);
    m('Claude Code', S.claude_version);
    m('started', clock(S.start_ms));
    m('duration', dur((sessionEnd || tMax) - (S.start_ms || tMin)));
    m('sources', (S.sources || []).join(', '));
    add(top, el('div', 'eyebrow', 'mpm-aggregate · session'), h1, meta);
  })();

  (function cards() {
    var box = $('cards');
    function card(label, value, notes) {
      var c = el('div', 'card');
      add(c, el('div', 'label', label), add(el('div', 'value'), value));
      (notes || []).forEach(function (n) {
        if (!n) return;
        var nd = add(el('div', 'note'), n);
        nd.title = nd.textContent;
        c.appendChild(nd);
      });
      box.appendChild(c);
    }
    var tk = M.tokens;
    var cc = M.claude_code;
    card('Cost', metric('cost_usd', M.cost_usd, usd(M.cost_usd)), [
      cc && cc.cost_usd !== undefined ? add(el('span'), 'Claude Code’s own: ', metric('claude_code.cost_usd', cc.cost_usd, usd(cc.cost_usd))) : null,
      (M.models || []).length ? (M.models || []).join(', ') : 'no API calls recorded'
    ]);
    card('Tokens', metric('tokens.total', tk ? tokSum(tk) : null, tk ? num(tokSum(tk)) : '—'), tk ? [
      add(el('span'), metric('tokens.input', tk.input, num(tk.input)), ' in · ', metric('tokens.output', tk.output, num(tk.output)), ' out'),
      add(el('span'), metric('tokens.cache_creation', tk.cache_creation, num(tk.cache_creation)), ' cache write · ', metric('tokens.cache_read', tk.cache_read, num(tk.cache_read)), ' read')
    ] : ['no transcript told any']);
    var tc = add(el('span'), metric('tool_calls', M.tool_calls, num(M.tool_calls)));
    if (M.tool_failures) add(tc, ' ', el('span', 'bad', '· '), metric('tool_failures', M.tool_failures, num(M.tool_failures) + ' failed', 'bad'));
    card('Tool calls', tc, [(M.tools_used || []).join(', ')]);
    var sub = add(el('span'), metric('total_delegations', M.total_delegations, num(M.total_delegations)));
    if (M.failed_delegations) add(sub, ' ', metric('failed_delegations', M.failed_delegations, num(M.failed_delegations) + ' failed', 'bad'));
    card('Sub-agents', sub, [num(M.successful_delegations) + ' succeeded' + (M.agents_used && M.agents_used.length ? ' · ' + M.agents_used.join(', ') : '')]);
    card('Turns', metric('prompts', M.prompts, num(M.prompts)), [add(el('span'), metric('api_calls', M.api_calls, num(M.api_calls)), ' API calls')]);
    card('Events', metric('total_events', S.event_count, num(S.event_count)), [
      num(fileOrder.length) + ' files touched · ' + num(lanes.length) + ' lanes'
    ]);
  })();

  // ---------- details drawer ----------
  var drawer = $('drawer'), dBody = $('drawer-body'), dTitle = $('drawer-title');
  var selected = null;
  function facts(rows) {
    var dl = el('dl', 'facts');
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined || r[1] === '') return;
      add(dl, el('dt', null, r[0]), add(el('dd'), r[1]));
    });
    return dl;
  }
  function pre(v, cls) {
    var p = el('pre', cls);
    p.textContent = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
    return p;
  }
  function section(title) { return el('h4', null, title); }
  function link(text, hash, cls) {
    var a = el('button', 'chip ' + (cls || ''), text);
    a.type = 'button';
    a.addEventListener('click', function () { location.hash = hash; });
    return a;
  }
  function openDrawer(title, nodes, sel) {
    dTitle.textContent = title;
    dBody.textContent = '';
    nodes.forEach(function (n) { if (n) dBody.appendChild(n); });
    drawer.hidden = false;
    drawer.setAttribute('data-kind', sel.kind);
    drawer.setAttribute('data-id', sel.id);
    selected = sel;
    drawTimeline();
    drawEvents();
  }
  function closeDrawer() {
    drawer.hidden = true;
    selected = null;
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    drawTimeline();
    drawEvents();
  }
  function callKey(c) { return c.use || ('c' + c.ix); }
  function showCall(c) {
    var s = c.start >= 0 ? EV[c.start] : null, f = c.end >= 0 ? EV[c.end] : null;
    var sd = (s && s[DATA]) || {}, fd = (f && f[DATA]) || {};
    var nodes = [facts([
      ['status', el('span', 'badge ' + (c.status === 'failed' ? 'bad' : c.status === 'ok' ? 'ok' : ''), c.status)],
      ['lane', laneChip(c.lane)],
      ['started', clock(c.t0)],
      ['ended', c.end >= 0 ? clock(c.t1) : 'no end recorded'],
      ['duration', c.end >= 0 ? dur(c.t1 - c.t0) : null],
      ['tool_use_id', c.use ? el('code', null, c.use) : null]
    ])];
    if (c.error) nodes.push(section('Error'), pre(c.error, 'error'));
    var input = sd.tool_input !== undefined ? sd.tool_input : fd.tool_input;
    if (input !== undefined) nodes.push(section('Input'), pre(input));
    if (fd.tool_response !== undefined) nodes.push(section('Output'), pre(fd.tool_response));
    var links = el('div', 'links');
    if (s) links.appendChild(link('event #' + s[ID] + ' ' + s[TYPE], '#event=' + s[ID]));
    if (f) links.appendChild(link('event #' + f[ID] + ' ' + f[TYPE], '#event=' + f[ID]));
    var spawned = c.kind === 'agent' && c.use && DL.filter(function (d) { return d.start_ref === c.use; })[0];
    if (spawned) links.appendChild(link('sub-agent ' + spawned.agent_type, '#agent=' + lanes[spawned.lane].key));
    nodes.push(section('Events'), links);
    openDrawer(c.tool + ' · ' + (c.status === 'failed' ? 'failed' : c.status === 'ok' ? dur(c.t1 - c.t0) : 'running'), nodes, { kind: 'call', id: callKey(c), call: c });
  }
  function showEvent(i) {
    var e = EV[i];
    var call = e[USE] ? callByUse[e[USE]] : null;
    var nodes = [facts([
      ['event', el('code', null, '#' + e[ID])],
      ['type', e[TYPE]],
      ['category', e[CAT]],
      ['time', clock(e[T])],
      ['lane', laneChip(laneIx[i])],
      ['tool', e[TOOL]],
      ['agent_id', e[AGENT] ? el('code', null, e[AGENT]) : null],
      ['tool_use_id', e[USE] ? el('code', null, e[USE]) : null],
      ['prompt_id', e[PROMPT] ? el('code', null, e[PROMPT]) : null],
      ['cost', e[COST] !== null ? usd(e[COST]) : null]
    ])];
    var err = errorOf(e[DATA]);
    if (err) nodes.push(section('Error'), pre(err, 'error'));
    nodes.push(section('Data'), pre(e[DATA]));
    if (call) nodes.push(section('Tool call'), add(el('div', 'links'), link(call.tool + ' call', '#call=' + callKey(call), call.status === 'failed' ? 'failed' : '')));
    openDrawer(e[TYPE] + (e[TOOL] ? ' · ' + e[TOOL] : ''), nodes, { kind: 'event', id: String(e[ID]), event: i });
  }
  function showAgent(l) {
    var lane = lanes[l], d = lane.d;
    if (!d) {
      openDrawer('main thread', [facts([
        ['events', num(lane.events)], ['tool calls', num(lane.calls.length)],
        ['failed', num(lane.calls.filter(function (c) { return c.status === 'failed'; }).length)]
      ])], { kind: 'agent', id: 'main', lane: 0 });
      return;
    }
    var t = d.tokens;
    var nodes = [facts([
      ['status', el('span', 'badge ' + (d.success === true ? 'ok' : d.success === false ? 'bad' : ''), d.success === true ? 'succeeded' : d.success === false ? 'failed' : 'running')],
      ['agent_id', d.agent_id ? el('code', null, d.agent_id) : null],
      ['started', clock(d.start_ms)],
      ['ended', d.end_ms ? clock(d.end_ms) : null],
      ['duration', d.end_ms ? dur(d.end_ms - d.start_ms) : null],
      ['task', d.description],
      ['model', d.model],
      ['tool calls', num(d.tool_calls) + (d.tool_failures ? ' (' + d.tool_failures + ' failed)' : '')],
      ['API calls', num(d.api_calls)],
      ['tokens', t ? num(t.input) + ' in · ' + num(t.output) + ' out · ' + num(t.cache_creation) + ' cache write · ' + num(t.cache_read) + ' cache read' : null],
      ['cost', usd(d.cost_usd)],
      ['background', d.background ? 'yes' : null],
      ['parent', d.parent_agent_id ? el('code', null, d.parent_agent_id) : null]
    ])];
    if (d.error) nodes.push(section('Error'), pre(d.error, 'error'));
    if (d.instructions) nodes.push(section('Asked'), pre(d.instructions));
    if (d.response) nodes.push(section('Answered'), pre(d.response));
    if ((d.files_modified || []).length) nodes.push(section('Files written'), pre(d.files_modified.join('\n')));
    var links = el('div', 'links');
    lane.calls.slice(0, 200).forEach(function (c) {
      links.appendChild(link(c.tool + ' ' + (c.status === 'failed' ? 'failed' : dur(c.t1 - c.t0)), '#call=' + callKey(c), c.kind + (c.status === 'failed' ? ' failed' : '')));
    });
    nodes.push(section('Tool calls'), links);
    openDrawer(d.agent_type + ' · ' + (d.agent_id || d.id), nodes, { kind: 'agent', id: lane.key, lane: d.lane });
  }
  function route() {
    var h = decodeURIComponent(location.hash.slice(1));
    var eq = h.indexOf('=');
    if (eq < 0) { if (!drawer.hidden) { drawer.hidden = true; selected = null; drawTimeline(); drawEvents(); } return; }
    var kind = h.slice(0, eq), id = h.slice(eq + 1);
    if (kind === 'call') {
      var c = callByUse[id] || (/^c\d+$/.test(id) ? calls[+id.slice(1)] : null);
      if (c) { showCall(c); revealCall(c); }
    } else if (kind === 'event') {
      var i = eventById[id];
      if (i !== undefined) { showEvent(i); revealEvent(i); }
    } else if (kind === 'agent') {
      for (var l = 0; l < lanes.length; l++) if (lanes[l].key === id) { showAgent(l); revealLane(l); break; }
    }
  }
  $('drawer-close').addEventListener('click', closeDrawer);
  document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape' && !drawer.hidden) closeDrawer(); });

  // ---------- timeline ----------
  var LANE_H = 34, ROW_STEP = 17, LABEL_W = 230;
  var laneTop = new Float64Array(lanes.length + 1);
  lanes.forEach(function (l, k) { l.h = LANE_H + (l.rows - 1) * ROW_STEP; laneTop[k + 1] = laneTop[k] + l.h; });
  function laneAt(y) {
    var lo = 0, hi = lanes.length - 1;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (laneTop[mid] <= y) lo = mid; else hi = mid - 1; }
    return lo;
  }
  var tl = $('timeline'), tlScroll = $('tl-scroll'), tlSpace = $('tl-space'), tlTicks = $('tl-ticks');
  var pad = Math.max((tMax - tMin) * 0.02, 20);
  var full0 = tMin - pad, full1 = tMax + pad;
  var v0 = full0, v1 = full1;
  tlSpace.style.height = laneTop[lanes.length] + 'px';
  tlScroll.style.height = Math.min(420, Math.max(70, laneTop[lanes.length] + 2)) + 'px';
  (function legend() {
    var lg = $('legend');
    [['file', 'files'], ['bash', 'Bash'], ['agent', 'sub-agent call'], ['todo', 'todos'], ['other', 'other'], ['failed', 'failed']].forEach(function (k) {
      var i = el('i');
      i.style.background = k[0] === 'failed' ? 'var(--bad)' : 'var(--c-' + k[0] + ')';
      add(lg, add(el('span'), i, k[1]));
    });
  })();
  function trackWidth() { return Math.max(100, tl.clientWidth - labelWidth()); }
  function labelWidth() { return parseFloat(getComputedStyle(tl).getPropertyValue('--label')) || LABEL_W; }
  function niceStep(raw) {
    var steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 10800000, 21600000, 43200000, 86400000];
    for (var i = 0; i < steps.length; i++) if (steps[i] >= raw) return steps[i];
    return Math.ceil(raw / 86400000) * 86400000;
  }
  function relLabel(ms, step) {
    var r = ms - tMin;
    if (step < 1000) return (r / 1000).toFixed(step < 10 ? 3 : step < 100 ? 2 : 1) + 's';
    if (step < 60000) return dur(r);
    return dur(r).replace(/ 0s$/, '');
  }
  var frame = 0;
  function drawTimeline() {
    if (frame) return;
    frame = requestAnimationFrame(function () { frame = 0; renderTimeline(); });
  }
  function renderTimeline() {
    var W = trackWidth(), span0 = v1 - v0, scale = W / span0;
    $('tl-range').textContent = dur(span0) + ' shown';
    // axis
    tlTicks.textContent = '';
    var step = niceStep(span0 / Math.max(2, W / 110));
    var first = Math.ceil((v0 - tMin) / step) * step + tMin;
    for (var t = first; t <= v1; t += step) {
      var tk = el('div', 'tick', relLabel(t, step));
      tk.style.left = ((t - v0) * scale) + 'px';
      tlTicks.appendChild(tk);
    }
    // lanes on screen only
    var top = tlScroll.scrollTop, h = tlScroll.clientHeight || 420;
    var a = Math.max(0, laneAt(top) - 2), b = Math.min(lanes.length, laneAt(top + h) + 3);
    tlSpace.textContent = '';
    // Prompt marks, thinned to one per few pixels (a long session has thousands).
    var marks = [], lastX = -Infinity, lastLabel = -Infinity;
    for (var q = lowerTurn(v0); q < turns.length && turns[q].t0 <= v1; q++) {
      var tr = turns[q], x = (tr.t0 - v0) * scale;
      if (x - lastX < 10) continue;
      var labelled = x - lastLabel >= 48;
      marks.push([tr.t0, labelled ? 'P' + tr.n : null, tr]);
      lastX = x;
      if (labelled) lastLabel = x;
    }
    for (var l = a; l < b; l++) tlSpace.appendChild(renderLane(l, W, scale, marks));
  }
  function px(t, scale) { return (t - v0) * scale; }
  function lowerTurn(t) {
    var lo = 0, hi = turns.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (turns[mid].t0 < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function renderLane(l, W, scale, marks) {
    var lane = lanes[l], d = lane.d;
    var row = el('div', 'lane');
    row.style.top = laneTop[l] + 'px';
    row.style.height = lane.h + 'px';
    row.setAttribute('data-lane', lane.key);
    row.setAttribute('data-depth', String(lane.depth));
    if (d) row.setAttribute('data-agent-type', d.agent_type || '');
    var label = el('div', 'lane-label');
    var name = el('div', 'name');
    var dot = el('span', 'dot');
    dot.style.background = lane.color;
    add(name, dot, lane.name, d && d.agent_id ? el('span', 'id', ' ' + d.agent_id.slice(0, 8)) : null);
    var failed = 0;
    for (var q = 0; q < lane.calls.length; q++) if (lane.calls[q].status === 'failed') failed++;
    var figs = d
      ? [d.end_ms ? dur(d.end_ms - d.start_ms) : 'running', num(d.tool_calls) + ' calls' + (failed ? ' · ' + failed + ' failed' : ''), usd(d.cost_usd)].join(' · ')
      : num(lane.calls.length) + ' calls' + (failed ? ' · ' + failed + ' failed' : '') + ' · ' + num(lane.events) + ' events';
    add(label, name, el('div', 'figs', figs));
    label.title = d ? (d.agent_type + ' ' + (d.agent_id || '') + '\n' + (d.description || '')) : 'the main thread';
    label.addEventListener('click', function () { location.hash = '#agent=' + encodeURIComponent(lane.key); });
    var track = el('div', 'lane-track');
    if (d) {
      var s0 = d.start_ms, s1 = d.end_ms || sessionEnd || tMax;
      if (s1 >= v0 && s0 <= v1) {
        var band = el('div', 'span' + (d.success === false ? ' failed' : ''));
        band.style.left = Math.max(-2, px(s0, scale)) + 'px';
        band.style.width = Math.max(2, Math.min(W + 4, px(s1, scale)) - Math.max(-2, px(s0, scale))) + 'px';
        track.appendChild(band);
      }
    }
    marks.forEach(function (m) {
      var mk = el('div', 'mark');
      mk.style.left = px(m[0], scale) + 'px';
      track.appendChild(mk);
      if (l === 0 && m[1]) {
        var lb = el('div', 'mark-label', m[1]);
        lb.style.left = px(m[0], scale) + 'px';
        lb.title = short(m[2].prompt, 200);
        lb.addEventListener('click', function () { zoomTo(m[2].t0, m[2].t1); });
        track.appendChild(lb);
      }
    });
    // bars in view: binary search past the calls that end before v0
    var cs = lane.calls, lo = 0, hi = cs.length, from = v0 - lane.maxDur;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (cs[mid].t0 < from) lo = mid + 1; else hi = mid; }
    var clusters = [];
    function flush(cluster) {
      if (!cluster) return;
      var bar;
      if (cluster.n === 1) {
        var c = cluster.c;
        bar = el('div', 'bar ' + c.kind + (c.status === 'failed' ? ' failed' : c.status === 'running' ? ' running' : ''));
        bar.setAttribute('data-call', callKey(c));
        bar.setAttribute('data-status', c.status);
        bar.setAttribute('data-tool', c.tool);
        if (selected && selected.kind === 'call' && selected.call === c) bar.className += ' selected';
        bar.title = c.tool + ' · ' + (c.status === 'failed' ? 'failed: ' + short(c.error, 160) : c.status === 'running' ? 'no end recorded' : dur(c.t1 - c.t0)) + '\n' + callSummary(c);
        if (cluster.x1 - cluster.x0 > 40) bar.textContent = c.tool;
      } else {
        bar = el('div', 'bar cluster' + (cluster.failed ? ' failed' : ''));
        bar.setAttribute('data-calls', String(cluster.n));
        bar.setAttribute('data-failed', String(cluster.failed));
        bar.title = cluster.n + ' calls' + (cluster.failed ? ', ' + cluster.failed + ' failed' : '') + ' — click to zoom in';
        if (cluster.x1 - cluster.x0 > 30) bar.textContent = String(cluster.n);
      }
      bar.style.left = cluster.x0 + 'px';
      bar.style.width = Math.max(3, cluster.x1 - cluster.x0) + 'px';
      bar.style.top = (9 + cluster.row * ROW_STEP) + 'px';
      bar._cluster = cluster;
      track.appendChild(bar);
    }
    // Bars too narrow to tell apart are drawn as one, with their count.
    for (var i = lo; i < cs.length && cs[i].t0 <= v1; i++) {
      var c = cs[i];
      if (c.t1 < v0) continue;
      var x0 = Math.max(-4, px(c.t0, scale)), x1 = Math.min(W + 4, Math.max(x0 + 3, px(c.t1, scale)));
      var cl = clusters[c.row];
      if (cl && x0 < cl.x1 + 2 && (x1 - x0 < 6 || cl.n > 1 || cl.x1 - cl.x0 < 6)) {
        cl.n++; cl.x1 = Math.max(cl.x1, x1); cl.t1 = Math.max(cl.t1, c.t1);
        if (c.status === 'failed') cl.failed++;
        continue;
      }
      flush(cl);
      clusters[c.row] = { n: 1, c: c, row: c.row, x0: x0, x1: x1, t0: c.t0, t1: c.t1, failed: c.status === 'failed' ? 1 : 0 };
    }
    clusters.forEach(flush);
    track.addEventListener('click', function (ev) {
      if (dragged) return;
      var b = ev.target.closest('.bar');
      if (!b || !b._cluster) return;
      if (b._cluster.n === 1) location.hash = '#call=' + encodeURIComponent(callKey(b._cluster.c));
      else zoomTo(b._cluster.t0, b._cluster.t1);
    });
    add(row, label, track);
    return row;
  }
  function callSummary(c) {
    var s = c.start >= 0 ? EV[c.start][DATA] : c.end >= 0 ? EV[c.end][DATA] : null;
    return inputSummary(s && s.tool_input);
  }
  function inputSummary(inp) {
    if (!inp || typeof inp !== 'object') return '';
    var v = inp.command || inp.file_path || inp.pattern || inp.description || inp.query || inp.url || inp.notebook_path || inp.path || inp.prompt;
    if (typeof v === 'string') return short(v, 140);
    if (Array.isArray(inp.todos)) return inp.todos.length + ' todos';
    return short(JSON.stringify(inp), 140);
  }
  function zoomTo(a, b) {
    var w = Math.max(b - a, 5), p = w * 0.08;
    v0 = a - p; v1 = b + p;
    drawTimeline();
    tl.scrollIntoView({ block: 'nearest' });
  }
  function zoom(f, at) {
    var w = v1 - v0, nw = Math.min(Math.max(w * f, 5), (full1 - full0) * 1.5);
    if (at === undefined) at = v0 + w / 2;
    var r = (at - v0) / w;
    v0 = at - nw * r; v1 = v0 + nw;
    drawTimeline();
  }
  function revealLane(l) {
    var top = laneTop[l], st = tlScroll.scrollTop, h = tlScroll.clientHeight;
    if (top < st || top + lanes[l].h > st + h) tlScroll.scrollTop = Math.max(0, top - h / 2);
  }
  function revealCall(c) {
    revealLane(c.lane);
    if (c.t1 < v0 || c.t0 > v1) { var w = v1 - v0; v0 = (c.t0 + c.t1) / 2 - w / 2; v1 = v0 + w; }
    drawTimeline();
  }
  $('zoom-in').addEventListener('click', function () { zoom(0.5); });
  $('zoom-out').addEventListener('click', function () { zoom(2); });
  $('zoom-fit').addEventListener('click', function () { v0 = full0; v1 = full1; drawTimeline(); });
  tlScroll.addEventListener('scroll', drawTimeline, { passive: true });
  tlScroll.addEventListener('wheel', function (ev) {
    var W = trackWidth(), x = ev.clientX - tlScroll.getBoundingClientRect().left - labelWidth();
    if (ev.ctrlKey || ev.metaKey || ev.altKey) {
      ev.preventDefault();
      zoom(Math.pow(1.0015, ev.deltaY), v0 + (x / W) * (v1 - v0));
    } else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      ev.preventDefault();
      var d = (ev.shiftKey ? ev.deltaY : ev.deltaX) * (v1 - v0) / W;
      v0 += d; v1 += d;
      drawTimeline();
    }
  }, { passive: false });
  var drag = null, dragged = false;
  tlScroll.addEventListener('mousedown', function (ev) {
    if (ev.button !== 0 || ev.target.closest('.lane-label')) return;
    drag = { x: ev.clientX, v0: v0, v1: v1 };
    dragged = false;
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x;
    if (Math.abs(dx) > 3) { dragged = true; tlScroll.classList.add('dragging'); }
    if (!dragged) return;
    var d = -dx * (drag.v1 - drag.v0) / trackWidth();
    v0 = drag.v0 + d; v1 = drag.v1 + d;
    drawTimeline();
  });
  window.addEventListener('mouseup', function () {
    drag = null;
    tlScroll.classList.remove('dragging');
    setTimeout(function () { dragged = false; }, 0);
  });
  window.addEventListener('resize', function () { drawTimeline(); drawEvents(); });

  // ---------- conversation ----------
  function callChip(c) {
    var b = el('button', 'chip ' + c.kind + (c.status === 'failed' ? ' failed' : ''));
    b.type = 'button';
    b.setAttribute('data-call', callKey(c));
    add(b, el('i'), c.tool, el('span', 'd', c.status === 'failed' ? 'failed' : c.status === 'running' ? '…' : dur(c.t1 - c.t0)));
    b.title = callSummary(c) + (c.error ? '\n' + short(c.error, 200) : '');
    b.addEventListener('click', function () { location.hash = '#call=' + encodeURIComponent(callKey(c)); });
    return b;
  }
  var TURN_PAGE = 40, turnsShown = 0;
  function renderTurn(t) {
    var li = el('li', 'turn');
    li.setAttribute('data-turn', String(t.n));
    var head = el('div', 'turn-head');
    var figs = el('div', 'turn-figs');
    add(figs,
      el('span', null, dur(t.t1 - t.t0)),
      add(el('span'), metric('turn.calls', t.calls.length, num(t.calls.length) + ' tool calls')),
      t.failed ? metric('turn.failed', t.failed, t.failed + ' failed', 'bad') : null,
      t.agents.length ? el('span', null, t.agents.length + ' sub-agent' + (t.agents.length > 1 ? 's' : '')) : null,
      t.api ? add(el('span'), metric('turn.tokens', tokSum(t.tokens), num(tokSum(t.tokens)) + ' tokens')) : null,
      t.api ? metric('turn.cost', t.costKnown ? t.cost : null, t.costKnown ? usd(t.cost) : '—') : null);
    var zb = el('button', 'zoom', 'timeline');
    zb.type = 'button';
    zb.title = 'Show this turn in the timeline';
    zb.addEventListener('click', function () { zoomTo(t.t0, t.t1); });
    add(head, el('span', 'turn-no', 'Turn ' + t.n), el('span', 'turn-figs', clock(t.t0).slice(11)), figs, zb);
    var user = add(el('div', 'bubble user'), el('span', 'who', 'Prompt'), t.prompt);
    add(li, head, user);
    if (t.calls.length) {
      // The calls of the turn, one line per lane (main thread first).
      var byLane = {}, order = [];
      t.calls.forEach(function (c) {
        if (!byLane[c.lane]) { byLane[c.lane] = []; order.push(c.lane); }
        byLane[c.lane].push(c);
      });
      order.sort(function (a, b) { return a - b; });
      var steps = el('div', 'turn-steps');
      order.slice(0, 12).forEach(function (l) {
        var line = el('div', 'steps-line');
        var who = el('button', 'steps-who');
        who.type = 'button';
        var dot = el('i');
        dot.style.background = lanes[l].color;
        add(who, dot, lanes[l].name);
        who.addEventListener('click', function () { location.hash = '#agent=' + encodeURIComponent(lanes[l].key); });
        line.appendChild(who);
        var cs = byLane[l], shown = cs.slice(0, 40);
        shown.forEach(function (c) { line.appendChild(callChip(c)); });
        if (cs.length > shown.length) line.appendChild(el('span', 'chip', '+' + num(cs.length - shown.length) + ' more'));
        steps.appendChild(line);
      });
      if (order.length > 12) steps.appendChild(el('div', 'sub', '+' + num(order.length - 12) + ' more lanes (see the timeline)'));
      li.appendChild(steps);
    }
    if (t.response) add(li, add(el('div', 'bubble assistant'), el('span', 'who', 'Response'), t.response));
    return li;
  }
  function moreTurns() {
    var ol = $('turns'), end = Math.min(turns.length, turnsShown + TURN_PAGE);
    for (; turnsShown < end; turnsShown++) ol.appendChild(renderTurn(turns[turnsShown]));
    $('turns-more').hidden = turnsShown >= turns.length;
    $('turns-more').textContent = 'Show more turns (' + num(turns.length - turnsShown) + ' left)';
  }
  $('turns-sub').textContent = num(turns.length) + ' turn' + (turns.length === 1 ? '' : 's');
  if (!turns.length) $('turns').appendChild(el('li', 'empty', 'No prompt was recorded in this session.'));
  moreTurns();
  $('turns-more').addEventListener('click', moreTurns);

  // ---------- side: sub-agents, failures, files ----------
  function pager(list, box, btn, page, render, what) {
    var shown = 0;
    function more() {
      var end = Math.min(list.length, shown + page);
      for (; shown < end; shown++) box.appendChild(render(list[shown]));
      btn.hidden = shown >= list.length;
      btn.textContent = 'Show more ' + what + ' (' + num(list.length - shown) + ' left)';
    }
    btn.addEventListener('click', more);
    more();
  }
  var agentLanes = lanes.slice(1);
  $('agents-sub').textContent = agentLanes.length ? num(agentLanes.length) + ' · ' + num(M.successful_delegations) + ' succeeded' : '';
  if (!agentLanes.length) $('agents').appendChild(el('div', 'empty', 'No work was delegated.'));
  pager(agentLanes, $('agents'), $('agents-more'), 50, function (lane) {
    var d = lane.d, t = d.tokens;
    var box = el('div', 'agent-card');
    box.setAttribute('data-agent-id', d.agent_id || '');
    box.setAttribute('data-agent-type', d.agent_type || '');
    var dot = el('span', 'dot');
    dot.style.background = lane.color;
    var ok = d.success === true ? 'succeeded' : d.success === false ? 'failed' : 'running';
    add(box, add(el('div', 'agent-head'), dot, el('span', 'name', d.agent_type), el('span', 'id', d.agent_id ? d.agent_id.slice(0, 12) : ''),
      el('span', 'badge ' + (d.success === true ? 'ok' : d.success === false ? 'bad' : ''), ok)));
    add(box, el('div', 'desc', d.description || short(d.instructions, 90) || ''));
    var kv = el('div', 'kv');
    add(kv,
      add(el('span'), 'time ', el('b', null, d.end_ms ? dur(d.end_ms - d.start_ms) : '…')),
      add(el('span'), 'calls ', el('b', null, num(d.tool_calls)), d.tool_failures ? add(el('b', 'bad'), ' · ', metric('agent.tool_failures', d.tool_failures, d.tool_failures + ' failed', 'bad')) : null),
      add(el('span'), 'tokens ', add(el('b'), metric('agent.tokens', t ? tokSum(t) : null, t ? num(tokSum(t)) : '—'))),
      add(el('span'), 'cost ', add(el('b'), metric('agent.cost_usd', d.cost_usd, usd(d.cost_usd)))));
    box.appendChild(kv);
    box.addEventListener('click', function () { location.hash = '#agent=' + encodeURIComponent(lane.key); });
    return box;
  }, 'sub-agents');

  failures.sort(function (a, b) { return a.t0 - b.t0; });
  $('failures-sub').textContent = failures.length ? num(failures.length) + ' failed tool call' + (failures.length > 1 ? 's' : '') : '';
  if (!failures.length) $('failures').appendChild(el('li', 'empty', 'No tool call failed.'));
  pager(failures, $('failures'), $('failures-more'), 30, function (c) {
    var li = el('li', 'failure');
    li.setAttribute('data-call', callKey(c));
    li.setAttribute('data-lane', lanes[c.lane].key);
    add(li, add(el('div', 'what'), c.tool, el('span', 'where', lanes[c.lane].name + ' · +' + dur(c.t0 - tMin))));
    var s = callSummary(c);
    if (s) li.appendChild(el('div', 'mono', s));
    li.appendChild(pre(short(c.error, 400)));
    li.addEventListener('click', function () { location.hash = '#call=' + encodeURIComponent(callKey(c)); });
    return li;
  }, 'failures');

  $('files-sub').textContent = fileOrder.length ? num(fileOrder.length) : '';
  if (!fileOrder.length) $('files').appendChild(el('li', 'empty', 'No file was read or written.'));
  pager(fileOrder, $('files'), $('files-more'), 50, function (p) {
    var f = files[p];
    var li = el('li', 'file-row');
    li.setAttribute('data-path', p);
    var root = S.working_directory ? S.working_directory.replace(/\/+$/, '') + '/' : null;
    var shown = root && p.indexOf(root) === 0 ? p.slice(root.length) : p;
    var cut = shown.lastIndexOf('/');
    var path = add(el('span', 'path'), el('span', 'dir', shown.slice(0, cut + 1)), shown.slice(cut + 1));
    path.title = p;
    add(li, path);
    var who = Object.keys(f.lanes).map(function (l) { return lanes[l].name; });
    add(li, el('span', 'who', (f.written ? 'written' : 'read') + (who.length ? ' · ' + who.slice(0, 3).join(', ') + (who.length > 3 ? ' +' + (who.length - 3) : '') : '')));
    return li;
  }, 'files');

  // ---------- events (virtualized) ----------
  var ROW_H = 28;
  var evScroll = $('ev-scroll'), evSpace = $('ev-space');
  var rows = null; // indexes of the events shown; null: all
  var failedEvent = new Uint8Array(EV.length);
  failures.forEach(function (c) { if (c.end >= 0) failedEvent[c.end] = 1; });
  function eventSummary(e) {
    var d = e[DATA] || {};
    switch (e[TYPE]) {
      case 'UserPromptSubmit': return promptText(d) || '';
      case 'Stop': case 'SubagentStop': return str(d.last_assistant_message) || str(d.response) || '';
      case 'SubagentStart': return (str(d.agent_type) || '') + (d.description ? ' — ' + d.description : '');
      case 'ApiCall':
        var u = d.usage || {};
        return (d.model || '') + ' · ' + num(u.input_tokens || 0) + ' in · ' + num(u.output_tokens || 0) + ' out · ' + num((u.cache_creation_input_tokens || 0) + (u.cache_read_input_tokens || 0)) + ' cache' + (e[COST] !== null ? ' · ' + usd(e[COST]) : '');
      case 'PostToolUseFailure': return errorOf(d) || '';
    }
    if (d.tool_input) return inputSummary(d.tool_input);
    var v = str(d.message) || str(d.delta) || str(d.reason) || str(d.source) || str(d.file_path);
    return v || '';
  }
  var day0 = new Date(tMin).toISOString().slice(0, 10);
  function evTime(t) {
    if (t === null || t === undefined) return '—';
    var iso = new Date(t).toISOString();
    // The clock time; the date too when it is not the session's first day.
    return iso.slice(0, 10) === day0 ? iso.slice(11, 23) : iso.slice(5, 10) + ' ' + iso.slice(11, 19);
  }
  function evRow(i) {
    var e = EV[i];
    var r = el('div', 'ev-row' + (failedEvent[i] || e[TYPE] === 'PostToolUseFailure' ? ' failed' : '') + (selected && selected.kind === 'event' && selected.event === i ? ' selected' : ''));
    r.setAttribute('data-event', String(e[ID]));
    var lane = lanes[laneIx[i]];
    var dot = el('i');
    dot.style.background = lane.color;
    add(r,
      el('span', 'n', e[ID]),
      el('span', 't', evTime(e[T])),
      add(el('span', 'l'), dot, lane.name),
      add(el('span', 'y'), e[TYPE], e[TOOL] ? el('small', null, e[TOOL]) : null),
      el('span', 'w', short(eventSummary(e), 240)));
    return r;
  }
  var evFrame = 0;
  function drawEvents() {
    if (evFrame) return;
    evFrame = requestAnimationFrame(function () { evFrame = 0; renderEvents(); });
  }
  function renderEvents() {
    var n = rows ? rows.length : EV.length;
    evSpace.style.height = (n * ROW_H) + 'px';
    var top = evScroll.scrollTop, h = evScroll.clientHeight || 420;
    var a = Math.max(0, Math.floor(top / ROW_H) - 8), b = Math.min(n, Math.ceil((top + h) / ROW_H) + 8);
    evSpace.textContent = '';
    for (var k = a; k < b; k++) {
      var i = rows ? rows[k] : k;
      var r = evRow(i);
      r.style.top = (k * ROW_H) + 'px';
      evSpace.appendChild(r);
    }
    $('events-sub').textContent = rows ? num(rows.length) + ' of ' + num(EV.length) : num(EV.length);
  }
  evScroll.addEventListener('scroll', drawEvents, { passive: true });
  evSpace.addEventListener('click', function (ev) {
    var r = ev.target.closest('.ev-row');
    if (r) location.hash = '#event=' + r.getAttribute('data-event');
  });
  function revealEvent(i) {
    var k = rows ? rows.indexOf(i) : i;
    if (k < 0) { rows = null; k = i; clearFilters(); }
    var top = k * ROW_H, st = evScroll.scrollTop, h = evScroll.clientHeight;
    if (top < st || top + ROW_H > st + h) evScroll.scrollTop = Math.max(0, top - h / 2);
    drawEvents();
  }
  (function filters() {
    var laneSel = $('ev-lane'), catSel = $('ev-cat');
    add(laneSel, optionOf('', 'all lanes'));
    lanes.slice(0, 500).forEach(function (l, k) { laneSel.appendChild(optionOf(String(k), l.name + (l.d && l.d.agent_id ? ' ' + l.d.agent_id.slice(0, 8) : ''))); });
    var cats = {};
    EV.forEach(function (e) { cats[e[CAT]] = (cats[e[CAT]] || 0) + 1; });
    add(catSel, optionOf('', 'all categories'));
    Object.keys(cats).sort().forEach(function (c) { catSel.appendChild(optionOf(c, c + ' (' + num(cats[c]) + ')')); });
    var text = $('ev-filter'), failedOnly = $('ev-failed');
    var timer = 0, haystack = null;
    function apply() {
      var q = text.value.trim().toLowerCase(), ln = laneSel.value, cat = catSel.value, fo = failedOnly.checked;
      if (!q && !ln && !cat && !fo) { rows = null; drawEvents(); return; }
      if (q && !haystack) {
        haystack = new Array(EV.length);
        for (var i = 0; i < EV.length; i++) {
          var e = EV[i];
          haystack[i] = (e[TYPE] + ' ' + (e[TOOL] || '') + ' ' + lanes[laneIx[i]].name + ' ' + (e[AGENT] || '') + ' ' + JSON.stringify(e[DATA])).toLowerCase();
        }
      }
      var out = [], lnN = ln === '' ? -1 : +ln;
      for (var j = 0; j < EV.length; j++) {
        if (lnN >= 0 && laneIx[j] !== lnN) continue;
        if (cat && EV[j][CAT] !== cat) continue;
        if (fo && !(failedEvent[j] || EV[j][TYPE] === 'PostToolUseFailure')) continue;
        if (q && haystack[j].indexOf(q) < 0) continue;
        out.push(j);
      }
      rows = out;
      evScroll.scrollTop = 0;
      drawEvents();
    }
    text.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(apply, 150); });
    [laneSel, catSel, failedOnly].forEach(function (x) { x.addEventListener('change', apply); });
    clearFilters = function () { text.value = ''; laneSel.value = ''; catSel.value = ''; failedOnly.checked = false; };
  })();
  function clearFilters() {}
  function optionOf(v, t) { var o = el('option', null, t); o.value = v; return o; }

  // ---------- start ----------
  renderTimeline();
  renderEvents();
  $('foot').textContent = 'Made by mpm-aggregate export --format html from its SQLite store. Strings longer than ' +
    num(D.string_limit) + ' characters are cut here; export --format full keeps them. Times are UTC.';
  window.addEventListener('hashchange', route);
  route();
  document.body.setAttribute('data-rendered', 'true');
  document.body.setAttribute('data-render-ms', String(Math.round(performance.now() - started)));
  // Since the navigation started: reading the file and parsing the page included.
  document.body.setAttribute('data-ready-ms', String(Math.round(performance.now())));
  document.body.setAttribute('data-events', String(EV.length));
  document.body.setAttribute('data-lanes', String(lanes.length));
  document.body.setAttribute('data-calls', String(calls.length));
})();
