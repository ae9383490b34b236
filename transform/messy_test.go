package transform

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
)

// messyTx is one generated sale, the truth the test checks against.
type messyTx struct {
	id         string
	customer   string // "" = missing
	region     string // as intended (upper case, trimmed)
	quantity   int
	priceCents int64
	spike      bool // an unusually high price
	eventUS    int64
}

var messyRegions = []string{"EU-WEST", "US-EAST", "AP-SOUTH", "SA-EAST"}

// messyStream generates n sales as JSON lines with re-deliveries, malformed
// lines, missing customers, zero / negative / huge quantities, numbers as
// strings, padded and lower-case regions and price spikes.
func messyStream(n int, seed uint64) (lines []string, txs []messyTx, redelivered []int, malformed int) {
	r := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := 0; i < n; i++ {
		tx := messyTx{
			id: fmt.Sprintf("T%07d", i), customer: fmt.Sprintf("C%04d", r.IntN(5000)),
			region: messyRegions[r.IntN(len(messyRegions))], quantity: 1 + r.IntN(10),
			priceCents: 100 + r.Int64N(9900), eventUS: base + int64(i)*1_000_000,
		}
		switch k := r.IntN(100); {
		case k < 4:
			tx.customer = ""
		case k < 7:
			tx.quantity = 0
		case k < 9:
			tx.quantity = -1 - r.IntN(5)
		case k < 11:
			tx.quantity = 5000 + r.IntN(100000)
		case k < 13 && i > 400:
			tx.priceCents, tx.spike = 999999, true
		}
		txs = append(txs, tx)
		lines = append(lines, messyLine(tx, r))
		if r.IntN(100) < 3 {
			lines = append(lines, "{not json "+tx.id)
			malformed++
		}
		if i > 10 && r.IntN(100) < 5 {
			j := i - 1 - r.IntN(10)
			lines = append(lines, messyLine(txs[j], r)) // a re-delivery, possibly formatted differently
			redelivered = append(redelivered, j)
		}
	}
	return lines, txs, redelivered, malformed
}

func messyLine(tx messyTx, r *rand.Rand) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"transaction_id":%q`, tx.id)
	switch {
	case tx.customer == "" && r.IntN(2) == 0:
	case tx.customer == "":
		sb.WriteString(`,"customer_id":"  "`)
	default:
		fmt.Fprintf(&sb, `,"customer_id":%q`, tx.customer)
	}
	region := tx.region
	if r.IntN(4) == 0 {
		region = "  " + strings.ToLower(region) + " "
	}
	if r.IntN(3) == 0 {
		fmt.Fprintf(&sb, `,"quantity":"%d"`, tx.quantity)
	} else {
		fmt.Fprintf(&sb, `,"quantity":%d`, tx.quantity)
	}
	price := fmt.Sprintf("%d.%02d", tx.priceCents/100, tx.priceCents%100)
	if r.IntN(2) == 0 {
		fmt.Fprintf(&sb, `,"unit_price":%q`, price)
	} else {
		fmt.Fprintf(&sb, `,"unit_price":%s`, price)
	}
	fmt.Fprintf(&sb, `,"region":%q,"event_time":%q}`, region, time.UnixMicro(tx.eventUS).UTC().Format(time.RFC3339))
	return sb.String()
}

func messySpec(tb testing.TB) Spec {
	return Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "transaction_id", Type: mustType(tb, "string")},
		{Name: "customer_id", Type: mustType(tb, "string")},
		{Name: "quantity", Type: mustType(tb, "int32")},
		{Name: "unit_price", Type: mustType(tb, "decimal(10,2)")},
		{Name: "region", Type: mustType(tb, "string")},
		{Name: "event_time", Type: mustType(tb, "timestamp")},
		{Name: "total_amount", Type: mustType(tb, "decimal(12,2)"), Expr: "quantity * unit_price"},
	}}
}

func messySteps() []Step {
	return []Step{
		{Trim: []string{"region", "customer_id"}},
		{Upper: []string{"region"}},
		{NullIfEmpty: []string{"customer_id"}},
		{Filter: "quantity > 0"},
		{Dedup: &DedupSpec{Keys: []string{"transaction_id"}, TTL: time.Hour}},
		{Quality: &QualitySpec{Rules: []string{
			`IsComplete "customer_id"`,
			`ColumnValues "quantity" <= 1000`,
			`ColumnValues "region" in ["EU-WEST", "US-EAST", "AP-SOUTH", "SA-EAST"]`,
		}}},
		{Outliers: &OutlierSpec{Column: "unit_price", Method: "iqr", By: []string{"region"}, MinSamples: 50, Action: "flag"}},
	}
}

// runMessy compiles the spec and the chain, and runs recs through both in
// chunks of chunk records, in order.
func runMessy(t *testing.T, spec Spec, steps []Step, recs []streamd.Record, chunk int, reg prometheus.Registerer) []*streamd.Batch {
	t.Helper()
	stateless, rest := SplitSteps(steps)
	spec.Steps = stateless
	prog, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := NewChain(prog.Schema(), rest, ChainOptions{Pipeline: "sales", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var out []*streamd.Batch
	for i := 0; i < len(recs); i += chunk {
		b := prog.Process("lane", nil, recs[i:min(i+chunk, len(recs))])
		if err := chain.Apply("lane", b); err != nil {
			t.Fatal(err)
		}
		if !b.Accounted() {
			t.Fatalf("batch at %d not accounted: read %d rows %d filtered %d dedup %d dead %d", i, b.Read, b.Len(), b.Filtered, b.Deduplicated, len(b.Dead))
		}
		out = append(out, b)
	}
	return out
}

func toRecords(lines []string) []streamd.Record {
	recs := make([]streamd.Record, len(lines))
	off := int64(0)
	for i, l := range lines {
		recs[i] = streamd.Record{Data: []byte(l), Pos: streamd.Position{Offset: off}}
		off += int64(len(l)) + 1
	}
	return recs
}

func TestMessySalesMatchesTruth(t *testing.T) {
	lines, txs, redelivered, malformed := messyStream(6000, 1)
	reg := prometheus.NewRegistry()
	batches := runMessy(t, messySpec(t), messySteps(), toRecords(lines), 700, reg)

	// The truth, from the generator's model.
	wantCount := map[string]int{}
	wantSum := map[string]int64{}
	wantSpikes := map[string]bool{}
	var wantFiltered, wantDedup, wantQuality int
	for _, tx := range txs {
		switch {
		case tx.quantity <= 0:
			wantFiltered++
		case tx.customer == "" || tx.quantity > 1000:
			wantQuality++
		default:
			wantCount[tx.region]++
			wantSum[tx.region] += int64(tx.quantity) * tx.priceCents
			if tx.spike {
				wantSpikes[tx.id] = true
			}
		}
	}
	for _, j := range redelivered {
		if txs[j].quantity <= 0 {
			wantFiltered++
		} else {
			wantDedup++
		}
	}

	gotCount := map[string]int{}
	gotSum := map[string]int64{}
	gotSpikes := map[string]bool{}
	var read, filtered, dedup, deadMalformed, deadQuality int
	seen := map[string]bool{}
	for _, b := range batches {
		read += b.Read
		filtered += b.Filtered
		dedup += b.Deduplicated
		s := b.Schema
		id, region, total, flag := s.Index("transaction_id"), s.Index("region"), s.Index("total_amount"), s.Index("unit_price_outlier")
		if flag < 0 && b.Len() > 0 {
			t.Fatalf("no flag column in %s", s.Fingerprint())
		}
		for j := 0; j < b.Len(); j++ {
			tid := string(b.Cols[id].Bytes.At(j))
			if seen[tid] {
				t.Errorf("transaction %s written twice", tid)
			}
			seen[tid] = true
			reg := string(b.Cols[region].Bytes.At(j))
			gotCount[reg]++
			gotSum[reg] += b.Cols[total].Int64[j]
			if b.Cols[flag].Bool[j] {
				gotSpikes[tid] = true
			}
		}
		for _, d := range b.Dead {
			switch {
			case strings.HasPrefix(d.Error, "malformed JSON"):
				deadMalformed++
			case strings.HasPrefix(d.Error, "quality: failed rules [") &&
				(strings.Contains(d.Error, `IsComplete "customer_id"`) || strings.Contains(d.Error, `ColumnValues "quantity" <= 1000`)):
				deadQuality++
				if len(d.Raw) == 0 || d.Raw[0] != '{' {
					t.Errorf("dead letter raw %q is not the row as JSON", d.Raw)
				}
			default:
				t.Errorf("unexpected dead letter %q", d.Error)
			}
		}
	}
	if read != len(lines) {
		t.Fatalf("read %d, want %d", read, len(lines))
	}
	if !reflect.DeepEqual(gotCount, wantCount) {
		t.Errorf("per-region counts %v, want %v", gotCount, wantCount)
	}
	if !reflect.DeepEqual(gotSum, wantSum) {
		t.Errorf("per-region sum(total_amount) in cents %v, want %v", gotSum, wantSum)
	}
	if filtered != wantFiltered || dedup != wantDedup || deadQuality != wantQuality || deadMalformed != malformed {
		t.Errorf("filtered %d dedup %d quality %d malformed %d, want %d %d %d %d",
			filtered, dedup, deadQuality, deadMalformed, wantFiltered, wantDedup, wantQuality, malformed)
	}
	if len(wantSpikes) == 0 || !reflect.DeepEqual(gotSpikes, wantSpikes) {
		t.Errorf("flagged outliers %d, want exactly the %d price spikes", len(gotSpikes), len(wantSpikes))
	}
	// Per-rule metrics: the completeness rule failed once per missing customer
	// that reached it.
	missing := 0
	for _, tx := range txs {
		if tx.quantity > 0 && tx.customer == "" {
			missing++
		}
	}
	if got := qualityCounter(t, reg, `0: IsComplete "customer_id"`, "fail"); int(got) != missing {
		t.Errorf("IsComplete fail counter = %v, want %d", got, missing)
	}
}

func qualityCounter(t *testing.T, reg *prometheus.Registry, rule, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "streamd_quality_rule_evaluations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rule"] == rule && labels["outcome"] == outcome && labels["pipeline"] == "sales" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no counter for rule %q outcome %q", rule, outcome)
	return 0
}

// crashSteps keep state in every stateful operator kind.
func crashSteps() []Step {
	return []Step{
		{Trim: []string{"region", "customer_id"}},
		{Upper: []string{"region"}},
		{Dedup: &DedupSpec{Keys: []string{"transaction_id"}, TTL: 30 * time.Minute, MaxKeys: 800}},
		{Outliers: &OutlierSpec{Column: "unit_price", Method: "iqr", By: []string{"region"}, Window: 50, Action: "dead_letter"}},
		{Outliers: &OutlierSpec{Column: "quantity", Method: "zscore", K: 2, Window: 30, Action: "clip"}},
		{Quality: &QualitySpec{Rules: []string{`IsUnique "customer_id"`, `(ColumnValues "quantity" > 0) or (IsComplete "customer_id")`}, Action: "flag"}},
	}
}

// decisions renders every batch's outcome: kept rows as JSON, dead letters
// with reasons, and the counters.
func decisions(bs []*streamd.Batch) []string {
	var out []string
	for _, b := range bs {
		var sb strings.Builder
		fmt.Fprintf(&sb, "read=%d filtered=%d dedup=%d\n", b.Read, b.Filtered, b.Deduplicated)
		for j := 0; j < b.Len(); j++ {
			sb.Write(streamd.AppendRowJSON(nil, b, j))
			sb.WriteByte('\n')
		}
		for _, d := range b.Dead {
			fmt.Fprintf(&sb, "dead %s %s\n", d.Pos, d.Error)
		}
		out = append(out, sb.String())
	}
	return out
}

func TestChainStateSurvivesRestart(t *testing.T) {
	lines, _, _, _ := messyStream(3000, 2)
	recs := toRecords(lines)
	spec := messySpec(t)
	stateless, rest := SplitSteps(crashSteps())
	spec.Steps = stateless
	prog, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 250
	run := func(chain *Chain, from, to int) []*streamd.Batch {
		var out []*streamd.Batch
		for i := from; i < to; i += chunk {
			b := prog.Process("lane", nil, recs[i:min(i+chunk, to)])
			if err := chain.Apply("lane", b); err != nil {
				t.Fatal(err)
			}
			if !b.Accounted() {
				t.Fatal("batch not accounted")
			}
			out = append(out, b)
		}
		return out
	}
	newChain := func() *Chain {
		c, err := NewChain(prog.Schema(), rest, ChainOptions{Pipeline: "p"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	whole := decisions(run(newChain(), 0, len(recs)))

	for _, cut := range []int{chunk, 5 * chunk, 9 * chunk} {
		first := newChain()
		before := run(first, 0, cut)
		state, err := first.Snapshot("lane")
		if err != nil {
			t.Fatal(err)
		}
		// The first run goes on past the snapshot and then crashes: what it
		// did after the snapshot is lost, as the commit never happened.
		run(first, cut, min(cut+2*chunk, len(recs)))

		second := newChain()
		if err := second.Restore("lane", state); err != nil {
			t.Fatal(err)
		}
		after := run(second, cut, len(recs))
		got := decisions(append(before, after...))
		if !reflect.DeepEqual(got, whole) {
			for i := range whole {
				if i < len(got) && got[i] != whole[i] {
					t.Fatalf("cut at %d: batch %d differs after restart:\n got %.600s\nwant %.600s", cut, i, got[i], whole[i])
				}
			}
			t.Fatalf("cut at %d: %d batches, want %d", cut, len(got), len(whole))
		}
	}
	// The run must actually have exercised every decision kind.
	all := strings.Join(whole, "")
	for _, want := range []string{`outliers "unit_price"`, `"dq_failed_rules":"0: IsUnique`} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s in the decisions", want)
		}
	}
	if !strings.Contains(all, "dedup=1") && !strings.Contains(all, "dedup=2") {
		t.Error("no duplicates dropped")
	}
}

func TestChainRestoreRejectsGarbage(t *testing.T) {
	prog, err := Compile(messySpec(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(prog.Schema(), []Step{{Dedup: &DedupSpec{Keys: []string{"transaction_id"}}}}, ChainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := c.Snapshot("l")
	for name, st := range map[string][]byte{
		"header":    []byte("XXXX"),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 1),
	} {
		if err := c.Restore("l", st); err == nil {
			t.Errorf("%s: Restore accepted %q", name, st)
		}
	}
	if err := c.Restore("l", good); err != nil {
		t.Errorf("Restore(good) = %v", err)
	}
}
