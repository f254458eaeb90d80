package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sysmon/sysmon/pkg/collect"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/sink/pg"
	"github.com/sysmon/sysmon/pkg/wire"
)

// The shipped Grafana files, relative to this package's directory (where
// go test runs).
const (
	dashboardDir      = "../../../config/grafana/dashboards"
	datasourceFile    = "../../../config/grafana/provisioning/datasources/sysmon.yaml"
	dashboardProvFile = "../../../config/grafana/provisioning/dashboards/sysmon.yaml"
)

// The panels that must return rows once one producer's samples are stored:
// the ones a user opens first. Others (pressure on a kernel without PSI,
// the function top below its significance threshold) may legitimately be
// empty, but their queries must still run.
var mustHaveRows = map[string][]string{
	"sysmon / Process top":     {"Status", "Last batch", "Now", "Latest top", "CPU by process", "Memory (RSS) by process"},
	"sysmon / Process history": {"Process", "CPU", "Memory"},
	"sysmon / Application top": {"Latest applications", "CPU by application", "Memory by application", "Processes by application"},
	"sysmon / Host":            {"CPU", "Load", "Memory", "Processes"},
	"sysmon / Events":          {"Events by kind", "Kinds", "Events"},
	"sysmon / Fleet":           {"Nodes", "Sample lag", "Load 1m by node", "CPU busy by node", "Memory used by node"},
}

// Two nodes, the first with a quote in its name: the variable must reach
// SQL escaped the way Grafana escapes it, and the fleet view must list both.
var dashboardNodes = []string{"alpha's box", "beta"}

// TestDashboardQueries stores real samples of this machine's /proc through
// the consumer's write path, then runs every query of every shipped
// dashboard (template variables first, in order, as Grafana resolves them;
// then every panel target, rows included) with Grafana's variable
// interpolation and PostgreSQL macros expanded, in read-only transactions.
// Every query must succeed; time series must have a "time" column in
// ascending order; the main panels must return rows.
func TestDashboardQueries(t *testing.T) {
	dashes := loadDashboards(t)
	dsUID := provisionedDatasourceUID(t)
	checkDashboards(t, dashes, dsUID)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.URL(t)
	store, err := pg.Open(ctx, url, pg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)

	samples := collectSamples(t, 3)
	for i, node := range dashboardNodes {
		h := &wire.Hello{Node: node, AgentVersion: "dashboards-test", BootID: collect.BootID("/proc"),
			SpoolID: fmt.Sprintf("spool-%d", i)}
		if _, err := store.OpenStream(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := store.WriteBatch(ctx, h, &wire.Batch{Seq: 1, Samples: samples}); err != nil {
			t.Fatal(err)
		}
	}

	// The dashboard's time range ends "now", as a default range does. Each
	// query runs with a coarse $__interval (what an hour on a wide panel
	// gets) and a fine one that splits the samples into several buckets
	// per series, so ordering and grouping are exercised too.
	now := time.Now()
	queries := 0
	for _, d := range dashes {
		t.Run(d.UID, func(t *testing.T) {
			rows := map[string]int{}
			for i, interval := range []string{"1m", "100ms"} {
				env := grafanaEnv{from: now.Add(-time.Hour), to: now.Add(time.Second), interval: interval}
				vars := resolveVariables(ctx, t, store.Pool(), d, env)
				walkPanels(d.Panels, func(p *panel) {
					for _, tg := range p.Targets {
						if tg.Hide || strings.TrimSpace(tg.RawSQL) == "" {
							continue
						}
						queries++
						sql, err := env.expand(tg.RawSQL, vars)
						if err != nil {
							t.Errorf("panel %q target %s: %v", p.Title, tg.RefID, err)
							continue
						}
						res, err := runQuery(ctx, store.Pool(), sql)
						if err != nil {
							t.Errorf("panel %q target %s ($__interval %s): %v\n%s", p.Title, tg.RefID, interval, err, sql)
							continue
						}
						if tg.Format == "time_series" {
							if err := res.checkTimeSeries(); err != nil {
								t.Errorf("panel %q target %s ($__interval %s): %v\n%s", p.Title, tg.RefID, interval, err, sql)
							}
						}
						if i == 0 {
							rows[p.Title] += len(res.rows)
						}
						t.Logf("%-30s %-3s %-5s %4d rows  %s", p.Title, tg.RefID, interval, len(res.rows), strings.Join(res.cols, ","))
					}
				})
			}
			for _, title := range mustHaveRows[d.Title] {
				n, ok := rows[title]
				switch {
				case !ok:
					t.Errorf("no panel %q with a query in %q", title, d.Title)
				case n == 0:
					t.Errorf("panel %q of %q returned no rows", title, d.Title)
				}
			}
			if d.UID == "sysmon-fleet" && rows["Nodes"] != len(dashboardNodes) {
				t.Errorf("fleet Nodes table has %d rows, want %d", rows["Nodes"], len(dashboardNodes))
			}
		})
	}
	for title := range mustHaveRows {
		if !hasDashboard(dashes, title) {
			t.Errorf("no dashboard titled %q", title)
		}
	}
	t.Logf("%d dashboards, %d panel queries", len(dashes), queries)
}

// collectSamples takes n samples of the real /proc a little apart, so that
// every sample after the first carries rates (CPU %, IO, run-queue wait).
// A 1 MiB suspect-RSS limit makes the first sample raise events.
func collectSamples(t testing.TB, n int) []wire.Sample {
	t.Helper()
	c, err := collect.New(collect.Options{TopN: 10, SuspectRSS: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []wire.Sample
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		s, err := c.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *s)
	}
	return out
}

// Dashboard JSON, only the parts the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	file string
}

type panel struct {
	ID         int      `json:"id"`
	Title      string   `json:"title"`
	Type       string   `json:"type"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // a collapsed row holds its panels
}

type target struct {
	RefID      string `json:"refId"`
	RawSQL     string `json:"rawSql"`
	Format     string `json:"format"`
	Hide       bool   `json:"hide"`
	Datasource *dsRef `json:"datasource"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dsRef          `json:"datasource"`
	Query      json.RawMessage `json:"query"` // a string, or {"rawSql": ...} from newer editors
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	Current    struct {
		Value json.RawMessage `json:"value"` // a string or a list of strings
	} `json:"current"`
	Options []struct {
		Value string `json:"value"`
	} `json:"options"`
}

// sql returns the variable's query text.
func (v *variable) sql() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var q struct {
		RawSQL string `json:"rawSql"`
	}
	if err := json.Unmarshal(v.Query, &q); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return q.RawSQL, nil
}

// wantsAll reports whether the saved selection is "All".
func (v *variable) wantsAll() bool {
	return v.IncludeAll && strings.Contains(string(v.Current.Value), "$__all")
}

func loadDashboards(t testing.TB) []*dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dashboardDir, err)
	}
	var out []*dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := &dashboard{file: filepath.Base(f)}
		if err := json.Unmarshal(b, d); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// provisionedDatasourceUID reads the uid the provisioning file gives the
// data source: the dashboards must refer to exactly that one. It also
// checks that the dashboard provider points at a directory (the compose
// file mounts config/grafana/dashboards there).
func provisionedDatasourceUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+uid:\s*"?([\w-]+)"?\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no data source uid", datasourceFile)
	}
	p, err := os.ReadFile(dashboardProvFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+path:\s*\S+`).Match(p) {
		t.Fatalf("%s: no dashboards path", dashboardProvFile)
	}
	return string(m[1])
}

// checkDashboards checks what Grafana needs to load the dashboards and find
// their data source: unique uids and titles, a schema version, and every
// data source reference (panel, target, variable) pointing at the
// provisioned uid.
func checkDashboards(t *testing.T, dashes []*dashboard, dsUID string) {
	t.Helper()
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range dashes {
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d", d.file, d.UID, d.Title, d.SchemaVersion)
		}
		if prev, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share uid %q", prev, d.file, d.UID)
		}
		if prev, ok := titles[d.Title]; ok {
			t.Errorf("%s and %s share title %q", prev, d.file, d.Title)
		}
		uids[d.UID], titles[d.Title] = d.file, d.file
		checkRef := func(where string, r *dsRef) {
			if r == nil || r.UID != dsUID {
				t.Errorf("%s: %s: data source %+v, want uid %q", d.file, where, r, dsUID)
			}
		}
		ids, panelTitles := map[int]bool{}, map[string]bool{}
		walkPanels(d.Panels, func(p *panel) {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", d.file, p.ID)
			}
			ids[p.ID] = true
			// Titles name panels in this test's expectations and in
			// users' links and alerts.
			if panelTitles[p.Title] {
				t.Errorf("%s: panel title %q used twice", d.file, p.Title)
			}
			panelTitles[p.Title] = true
			if p.Type == "row" {
				return
			}
			checkRef("panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.file, p.Title)
			}
			for _, tg := range p.Targets {
				checkRef(fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Datasource)
				if tg.Format != "table" && tg.Format != "time_series" {
					t.Errorf("%s: panel %q target %s: format %q", d.file, p.Title, tg.RefID, tg.Format)
				}
			}
		})
		for i := range d.Templating.List {
			if v := &d.Templating.List[i]; v.Type == "query" {
				checkRef("variable "+v.Name, v.Datasource)
			}
		}
	}
}

func walkPanels(ps []panel, f func(*panel)) {
	for i := range ps {
		f(&ps[i])
		walkPanels(ps[i].Panels, f)
	}
}

func hasDashboard(dashes []*dashboard, title string) bool {
	for _, d := range dashes {
		if d.Title == title {
			return true
		}
	}
	return false
}

// varValue is a template variable's selection: one value, or several when
// the variable is multi-value or "All".
type varValue struct {
	values []string
	multi  bool // multi or includeAll: Grafana quotes each value
}

// resolveVariables computes the variables of d in order, as Grafana does
// on load with nothing selected in the URL: a query variable runs its
// query (expanded with the variables before it) and takes the first value,
// or every value when its saved selection is "All"; a custom variable
// takes its saved value. Every query variable must find values in the
// test data.
func resolveVariables(ctx context.Context, t testing.TB, pool *pgxpool.Pool, d *dashboard, env grafanaEnv) map[string]varValue {
	t.Helper()
	vars := map[string]varValue{}
	for i := range d.Templating.List {
		v := &d.Templating.List[i]
		multi := v.Multi || v.IncludeAll
		switch v.Type {
		case "query":
			q, err := v.sql()
			if err != nil {
				t.Fatal(err)
			}
			sql, err := env.expand(q, vars)
			if err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			res, err := runQuery(ctx, pool, sql)
			if err != nil {
				t.Fatalf("variable %s: %v\n%s", v.Name, err, sql)
			}
			col := 0
			for i, c := range res.cols {
				if c == "__value" {
					col = i
				}
			}
			var values []string
			for _, r := range res.rows {
				values = append(values, fmt.Sprint(r[col]))
			}
			if len(values) == 0 {
				t.Fatalf("variable %s: no values\n%s", v.Name, sql)
			}
			if !v.wantsAll() {
				values = values[:1]
			}
			vars[v.Name] = varValue{values: values, multi: multi}
			t.Logf("variable %s = %q", v.Name, values)
		case "custom":
			var cur string
			if err := json.Unmarshal(v.Current.Value, &cur); err != nil || cur == "" {
				if len(v.Options) == 0 {
					t.Fatalf("variable %s: no current value and no options", v.Name)
				}
				cur = v.Options[0].Value
			}
			vars[v.Name] = varValue{values: []string{cur}, multi: multi}
		default:
			t.Fatalf("variable %s: type %q is not handled by this test", v.Name, v.Type)
		}
	}
	return vars
}

// grafanaEnv is what a panel query sees: the dashboard's time range and the
// interval Grafana computed for the panel.
type grafanaEnv struct {
	from, to time.Time
	interval string // $__interval, e.g. "1m"
}

var (
	// Grafana's template variable syntax (templateSrv): $name, [[name]],
	// [[name:format]], ${name}, ${name:format}.
	varRE = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}`)
	// The PostgreSQL data source's macro syntax: no ')' inside arguments.
	macroRE = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)
	// Anything that still looks like a variable after expansion.
	leftoverRE = regexp.MustCompile(`\$\{?\w|\[\[\w`)
)

// expand turns a dashboard query into the SQL Grafana sends to PostgreSQL:
// first the frontend's variable interpolation (which doubles quotes in a
// single value and quotes each value of a multi-value variable), then the
// backend's macros. Unknown macros, formats and leftover variables are
// errors, so a typo in a dashboard fails here rather than in Grafana.
func (e grafanaEnv) expand(q string, vars map[string]varValue) (string, error) {
	var ferr error
	q = varRE.ReplaceAllStringFunc(q, func(m string) string {
		g := varRE.FindStringSubmatch(m)
		name, format := g[1], ""
		switch {
		case g[2] != "":
			name, format = g[2], g[3]
		case g[4] != "":
			name, format = g[4], g[5]
		}
		if s, ok := e.builtin(name); ok {
			return s
		}
		v, ok := vars[name]
		if !ok {
			return m // not a variable: Grafana leaves it (macros are handled below)
		}
		s, err := v.format(format)
		if err != nil && ferr == nil {
			ferr = fmt.Errorf("%s: %w", m, err)
		}
		return s
	})
	if ferr != nil {
		return "", ferr
	}
	q, err := e.macros(q)
	if err != nil {
		return "", err
	}
	if loc := leftoverRE.FindStringIndex(q); loc != nil {
		return "", fmt.Errorf("unexpanded variable at %q", q[loc[0]:min(len(q), loc[0]+30)])
	}
	return q, nil
}

// builtin returns Grafana's global variables.
func (e grafanaEnv) builtin(name string) (string, bool) {
	switch name {
	case "__interval":
		return e.interval, true
	case "__interval_ms":
		d, _ := parseInterval(e.interval)
		return strconv.FormatInt(d.Milliseconds(), 10), true
	case "__from":
		return strconv.FormatInt(e.from.UnixMilli(), 10), true
	case "__to":
		return strconv.FormatInt(e.to.UnixMilli(), 10), true
	case "__range_s":
		return strconv.FormatInt(int64(e.to.Sub(e.from).Seconds()), 10), true
	}
	return "", false
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// format renders a selection as the SQL data sources' interpolateVariable
// does, or with an explicit ${var:format}.
func (v varValue) format(format string) (string, error) {
	switch format {
	case "":
		if !v.multi && len(v.values) == 1 {
			return strings.ReplaceAll(v.values[0], "'", "''"), nil
		}
		fallthrough
	case "sqlstring", "singlequote":
		q := make([]string, len(v.values))
		for i, s := range v.values {
			q[i] = quoteLiteral(s)
		}
		return strings.Join(q, ","), nil
	case "raw", "csv":
		return strings.Join(v.values, ","), nil
	}
	return "", fmt.Errorf("variable format %q not handled by this test", format)
}

// macros expands the PostgreSQL data source's macros exactly as Grafana's
// backend does (pkg/tsdb/grafana-postgresql-datasource/macros.go),
// without TimescaleDB.
func (e grafanaEnv) macros(q string) (string, error) {
	var b strings.Builder
	last := 0
	for _, m := range macroRE.FindAllStringSubmatchIndex(q, -1) {
		name, rawArgs := q[m[2]:m[3]], q[m[4]:m[5]]
		// Before Grafana 5.3, $__timeGroup added the alias; a ',' right
		// after it still selects that behaviour.
		if name == "__timeGroup" && m[1] < len(q) && q[m[1]] == ',' {
			name = "__timeGroupAlias"
		}
		args := strings.Split(rawArgs, ",")
		for i := range args {
			args[i] = strings.Trim(args[i], " ")
		}
		s, err := e.macro(name, args)
		if err != nil {
			return "", err
		}
		b.WriteString(q[last:m[0]])
		b.WriteString(s)
		last = m[1]
	}
	b.WriteString(q[last:])
	return b.String(), nil
}

func (e grafanaEnv) macro(name string, args []string) (string, error) {
	from, to := e.from.UTC().Format(time.RFC3339Nano), e.to.UTC().Format(time.RFC3339Nano)
	needCol := func() error {
		if len(args) == 0 || args[0] == "" {
			return fmt.Errorf("missing time column argument for macro %s", name)
		}
		return nil
	}
	switch name {
	case "__time":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf(`%s AS "time"`, args[0]), nil
	case "__timeEpoch":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf(`extract(epoch from %s) as "time"`, args[0]), nil
	case "__timeFilter":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0], from, to), nil
	case "__timeFrom":
		return "'" + from + "'", nil
	case "__timeTo":
		return "'" + to + "'", nil
	case "__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias":
		if len(args) < 2 {
			return "", fmt.Errorf("macro %s needs time column and interval and optional fill value", name)
		}
		d, err := parseInterval(strings.Trim(args[1], "'"))
		if err != nil {
			return "", fmt.Errorf("macro %s: %w", name, err)
		}
		secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
		var s string
		if strings.HasPrefix(name, "__unixEpoch") {
			s = fmt.Sprintf("floor((%s)/%s)*%s", args[0], secs, secs)
		} else {
			s = fmt.Sprintf("floor(extract(epoch from %s)/%s)*%s", args[0], secs, secs)
		}
		if strings.HasSuffix(name, "Alias") {
			s += ` AS "time"`
		}
		return s, nil
	case "__unixEpochFilter":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %d AND %s <= %d", args[0], e.from.Unix(), args[0], e.to.Unix()), nil
	case "__unixEpochNanoFilter":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %d AND %s <= %d", args[0], e.from.UnixNano(), args[0], e.to.UnixNano()), nil
	case "__unixEpochNanoFrom":
		return strconv.FormatInt(e.from.UnixNano(), 10), nil
	case "__unixEpochNanoTo":
		return strconv.FormatInt(e.to.UnixNano(), 10), nil
	}
	return "", fmt.Errorf("unknown macro %q", name)
}

// parseInterval parses Grafana interval strings: 500ms, 30s, 1m, 2h, 1d,
// 1w, 1M, 1y.
func parseInterval(s string) (time.Duration, error) {
	m := regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w|M|y)$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("bad interval %q", s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "M": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// result is a query's whole answer.
type result struct {
	cols []string
	rows [][]any
}

// runQuery runs sql in a read-only transaction (dashboards only read; the
// data source role may be read-only) and reads every row.
func runQuery(ctx context.Context, pool *pgxpool.Pool, sql string) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &result{}
	for _, f := range rows.FieldDescriptions() {
		res.cols = append(res.cols, f.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		res.rows = append(res.rows, vals)
	}
	return res, rows.Err()
}

// checkTimeSeries checks what Grafana's SQL data sources require of a
// time_series query: a column named time holding a time or epoch seconds,
// in ascending order.
func (r *result) checkTimeSeries() error {
	col := -1
	for i, c := range r.cols {
		if c == "time" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("time series without a time column (columns %v)", r.cols)
	}
	prev := math.Inf(-1)
	for i, row := range r.rows {
		v, err := epochSeconds(row[col])
		if err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		if v < prev {
			return fmt.Errorf("time column not ascending at row %d", i)
		}
		prev = v
	}
	return nil
}

func epochSeconds(v any) (float64, error) {
	switch x := v.(type) {
	case time.Time:
		return float64(x.UnixNano()) / 1e9, nil
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case pgtype.Numeric:
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return 0, fmt.Errorf("time value %v: %v", v, err)
		}
		return f.Float64, nil
	}
	return 0, fmt.Errorf("time value %v of type %T", v, v)
}

// TestGrafanaExpand pins the expansion to what Grafana produces, so the
// dashboard test runs the SQL Grafana would.
func TestGrafanaExpand(t *testing.T) {
	from := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	env := grafanaEnv{from: from, to: from.Add(time.Hour), interval: "1m"}
	vars := map[string]varValue{
		"node":  {values: []string{"o'brien"}},
		"nodes": {values: []string{"a", "b'c"}, multi: true},
	}
	for _, c := range []struct{ in, want, err string }{
		{in: "node = '$node'", want: "node = 'o''brien'"},
		{in: "node = '${node}' OR node = '[[node]]'", want: "node = 'o''brien' OR node = 'o''brien'"},
		{in: "node = ${node:sqlstring}", want: "node = 'o''brien'"},
		{in: "node IN ($nodes)", want: "node IN ('a','b''c')"},
		{in: "WHERE $__timeFilter(p.ts)", want: "WHERE p.ts BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-01T11:00:00Z'"},
		{in: "ts > $__timeFrom() AND ts < $__timeTo()", want: "ts > '2026-03-01T10:00:00Z' AND ts < '2026-03-01T11:00:00Z'"},
		{in: "SELECT $__time(ts)", want: `SELECT ts AS "time"`},
		{in: "SELECT $__timeGroupAlias(ts, $__interval)", want: `SELECT floor(extract(epoch from ts)/60)*60 AS "time"`},
		{in: "SELECT $__timeGroup(ts, '5m'), x", want: `SELECT floor(extract(epoch from ts)/300)*300 AS "time", x`},
		{in: "GROUP BY $__timeGroup(ts, 500ms)", want: "GROUP BY floor(extract(epoch from ts)/0.5)*0.5"},
		{in: "LIMIT $__interval_ms", want: "LIMIT 60000"},
		{in: "$__timeFilter()", err: "missing time column"},
		{in: "$__nope(ts)", err: "unknown macro"},
		{in: "node = '$nosuch'", err: "unexpanded variable"},
		{in: "node = ${node:json}", err: "not handled"},
	} {
		got, err := env.expand(c.in, vars)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("expand(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// BenchmarkDashboardQueries measures what one refresh of each dashboard
// costs PostgreSQL over a realistic hour: 10 nodes sending a sample every
// 2 s (the producer's default), each sample a copy of a real one from this
// machine's /proc. One op is every panel query of the dashboard, run one
// after the other as a single refresh would (Grafana runs them in
// parallel, so this is the database time, not the wall time).
func BenchmarkDashboardQueries(b *testing.B) {
	dashes := loadDashboards(b)
	ctx := context.Background()
	store, err := pg.Open(ctx, pgtest.URL(b), pg.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()

	const nodes, perNode, every, perBatch = 10, 1800, 2 * time.Second, 60
	sample := collectSamples(b, 2)[1]
	now := time.Now()
	start := now.Add(-perNode * every)
	for n := 0; n < nodes; n++ {
		h := &wire.Hello{Node: fmt.Sprintf("node-%02d", n), SpoolID: "bench"}
		for i, seq := 0, uint64(1); i < perNode; seq++ {
			batch := &wire.Batch{Seq: seq}
			for ; i < perNode && len(batch.Samples) < perBatch; i++ {
				s := sample
				s.Time = start.Add(time.Duration(i) * every)
				s.Events = nil
				batch.Samples = append(batch.Samples, s)
			}
			if err := store.WriteBatch(ctx, h, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := store.Pool().Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	// 5s is the $__interval Grafana computes for an hour on a panel about
	// a thousand pixels wide.
	env := grafanaEnv{from: now.Add(-time.Hour), to: now.Add(time.Second), interval: "5s"}
	for _, d := range dashes {
		vars := resolveVariables(ctx, b, store.Pool(), d, env)
		var sqls []string
		walkPanels(d.Panels, func(p *panel) {
			for _, tg := range p.Targets {
				sql, err := env.expand(tg.RawSQL, vars)
				if err != nil {
					b.Fatal(err)
				}
				sqls = append(sqls, sql)
			}
		})
		b.Run(d.UID, func(b *testing.B) {
			for b.Loop() {
				for _, sql := range sqls {
					if _, err := runQuery(ctx, store.Pool(), sql); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/refresh")
		})
	}
}
