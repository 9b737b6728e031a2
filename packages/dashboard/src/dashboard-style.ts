/** The page's stylesheet: one column and scrolling tables below 760 px (a phone's 375 px included). */
export const DASHBOARD_CSS = `
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e3e6eb; --accent:#3559e0;
          --ok:#1f9d55; --warn:#c77c02; --bad:#d23b3b; --info:#3559e0; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
  header { display:flex; flex-wrap:wrap; align-items:center; gap:8px 16px; padding:10px 24px; background:#111827; color:#fff; }
  header h1 { font-size:18px; margin:0; font-weight:600; letter-spacing:.2px; }
  header .muted { color:#9ca3af; }
  header nav { display:flex; gap:4px; flex-wrap:wrap; }
  header nav a { color:#d1d5db; text-decoration:none; padding:4px 10px; border-radius:5px; }
  header nav a.active { background:#374151; color:#fff; }
  header .right { margin-left:auto; display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
  main { padding:20px 24px; display:grid; gap:20px; grid-template-columns: 1fr 1fr; }
  main[hidden], section[hidden], div[hidden] { display:none; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:15px; margin:0 0 10px; display:flex; flex-wrap:wrap; gap:8px; align-items:baseline; }
  h2 .count { color:var(--muted); font-weight:400; font-size:13px; }
  h3 { font-size:13px; margin:12px 0 6px; color:var(--muted); text-transform:uppercase; letter-spacing:.3px; }
  .cards { display:grid; grid-template-columns: repeat(5, 1fr); gap:12px; grid-column: 1 / -1; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
  .card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
  .card .value { font-size:26px; font-weight:600; margin-top:2px; font-variant-numeric: tabular-nums; }
  .scroll { overflow-x:auto; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; font-size:12px; text-transform:uppercase; letter-spacing:.3px; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  td.err { white-space:normal; color:var(--bad); max-width:340px; overflow-wrap:anywhere; }
  td.mono, span.mono, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12px; }
  pre { background:#f3f4f6; padding:8px; border-radius:6px; overflow:auto; max-height:320px; white-space:pre-wrap; overflow-wrap:anywhere; }
  tr.clickable { cursor:pointer; } tr.clickable:hover { background:#f0f3ff; } tr.selected { background:#e6ebff; }
  .empty { color:var(--muted); padding:8px; }
  button { font:inherit; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:5px; padding:3px 10px; cursor:pointer; }
  button.secondary { background:#fff; color:var(--accent); }
  button.danger { background:var(--bad); border-color:var(--bad); }
  button:disabled { opacity:.5; cursor:default; }
  td.actions button + button { margin-left:6px; }
  .pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:500; background:#eef0f4; }
  .pill.running, .pill.compensating, .pill.in_flight { background:#e6ebff; color:var(--info); }
  .pill.completed, .pill.ready { background:#e3f6ea; color:var(--ok); }
  .pill.compensated, .pill.retrying, .pill.paused, .pill.held { background:#fff3dc; color:var(--warn); }
  .pill.failed { background:#fde5e5; color:var(--bad); }
  .statuses { display:flex; gap:8px; flex-wrap:wrap; margin-bottom:10px; }
  .up { color:var(--bad); } .down { color:var(--ok); }
  form.filters { display:flex; flex-wrap:wrap; gap:8px; align-items:end; margin-bottom:10px; }
  form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
  input, select { font:inherit; padding:3px 6px; border:1px solid var(--line); border-radius:5px; min-width:0; }
  .pager { display:flex; gap:8px; align-items:center; margin-top:8px; }
  dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:0; }
  dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; overflow-wrap:anywhere; }
  ol.timeline { list-style:none; margin:0; padding:0 0 0 14px; border-left:2px solid var(--line); }
  ol.timeline li { position:relative; padding:4px 0 8px 12px; }
  ol.timeline li::before { content:""; position:absolute; left:-20px; top:9px; width:10px; height:10px; border-radius:50%; background:var(--accent); }
  ol.timeline li.failed::before, ol.timeline li.timed_out::before, ol.timeline li.compensation_failed::before { background:var(--bad); }
  ol.timeline li.compensated::before, ol.timeline li.compensation_sent::before { background:var(--warn); }
  ol.timeline li.completed::before { background:var(--ok); }
  ol.timeline .when { color:var(--muted); font-size:12px; margin-left:8px; }
  #notice { color:#fca5a5; }
  #vacuum-warning { color:var(--bad); font-weight:600; grid-column: 1 / -1; margin:0; }
  #login { max-width:360px; margin:80px auto; }
  #login form { display:flex; flex-direction:column; gap:10px; }
  #login-error { color:var(--bad); min-height:1.4em; }
  dialog { border:1px solid var(--line); border-radius:10px; padding:18px; max-width:min(440px, 92vw); }
  dialog::backdrop { background:rgba(17,24,39,.45); }
  dialog .buttons { display:flex; gap:8px; justify-content:flex-end; margin-top:14px; }
  dialog textarea { width:100%; font:inherit; }
  @media (max-width: 760px) {
    header { padding:10px 12px; }
    main { padding:12px; gap:12px; grid-template-columns: 1fr; }
    .cards { grid-template-columns: repeat(2, 1fr); }
    .card .value { font-size:20px; }
    form.filters label, form.filters input, form.filters select { width:100%; }
  }
`;
