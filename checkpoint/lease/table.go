package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd/checkpoint/dynamodb"
)

// Config configures a Table manager.
type Config struct {
	// Client is the DynamoDB client; Table the table shared with the
	// checkpoint store (see checkpoint/dynamodb for the schema).
	Client dynamodb.API
	Table  string
	// Pipeline is the pipeline whose shards are leased (the items'
	// partition key).
	Pipeline string
	// Owner identifies this worker in lease_owner (default
	// hostname-pid-random). It must differ between live processes.
	Owner string
	// RenewInterval is how often Tick renews and balances (default 2s).
	// Shorter notices new shards and failures sooner at the cost of one
	// UpdateItem per held lease and one Query per interval.
	RenewInterval time.Duration
	// FailoverTime is how long a lease's counter may stay unchanged before
	// other workers take it (default 10s, at least 3 × RenewInterval).
	// Shorter fails over faster; too short lets a slow but live worker
	// lose leases (its commits are then fenced).
	FailoverTime time.Duration
	// Logger receives lease changes; nil discards them.
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests may replace it.
	Now func() time.Time
}

// Table is the Manager that keeps leases in the DynamoDB table shared with
// the checkpoint store, so many processes can share a stream's shards.
//
// Expiry does not compare clocks between hosts: each worker remembers when
// it last saw a lease's counter change, and a lease whose counter has not
// moved for FailoverTime is taken with a write conditional on that counter.
type Table struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	held     map[string]*held
	seen     map[string]seen
	synced   map[string]bool
	yielding map[string]bool
	asked    map[string]time.Time // shards we asked their owner for
}

type held struct {
	mu      sync.Mutex // serialises renewals with fenced checkpoint writes
	counter int64
	gone    bool // released, finished or lost: no longer ours
}

type seen struct {
	owner   string
	counter int64
	at      time.Time
}

var _ Manager = (*Table)(nil)

// NewTable returns a Table manager. It does no I/O (the table is created by
// dynamodb.EnsureTable).
func NewTable(cfg Config) (*Table, error) {
	if cfg.Client == nil || cfg.Table == "" || cfg.Pipeline == "" {
		return nil, errors.New("new lease table: client, table and pipeline are required")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		cfg.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = 2 * time.Second
	}
	if cfg.FailoverTime <= 0 {
		cfg.FailoverTime = 10 * time.Second
	}
	if cfg.FailoverTime < 3*cfg.RenewInterval {
		return nil, fmt.Errorf("new lease table: failover time %v is shorter than 3 renew intervals (%v)", cfg.FailoverTime, cfg.RenewInterval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{
		cfg: cfg, log: log.With(slog.String("owner", cfg.Owner)),
		held: map[string]*held{}, seen: map[string]seen{}, synced: map[string]bool{},
		yielding: map[string]bool{}, asked: map[string]time.Time{},
	}, nil
}

// Owner returns this worker's id.
func (m *Table) Owner() string { return m.cfg.Owner }

// Interval implements Manager.
func (m *Table) Interval() time.Duration { return m.cfg.RenewInterval }

func (m *Table) key(shard string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		dynamodb.AttrPipeline: &types.AttributeValueMemberS{Value: m.cfg.Pipeline},
		dynamodb.AttrLane:     &types.AttributeValueMemberS{Value: shard},
	}
}

func n(i int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(i, 10)}
}
func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func isCCF(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Sync implements Manager: one idempotent UpdateItem per shard not synced
// before by this worker.
func (m *Table) Sync(ctx context.Context, shards []Shard) error {
	for _, sh := range shards {
		m.mu.Lock()
		done := m.synced[sh.ID]
		m.mu.Unlock()
		if done {
			continue
		}
		expr := "SET #lc = if_not_exists(#lc, :zero)"
		names := map[string]string{"#lc": dynamodb.AttrLeaseCounter}
		values := map[string]types.AttributeValue{":zero": n(0)}
		if len(sh.Parents) > 0 {
			expr += ", #par = :par"
			names["#par"] = dynamodb.AttrParents
			values[":par"] = &types.AttributeValueMemberSS{Value: sh.Parents}
		}
		_, err := m.cfg.Client.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: aws.String(m.cfg.Table), Key: m.key(sh.ID), UpdateExpression: aws.String(expr),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		})
		if err != nil {
			return fmt.Errorf("sync lease of shard %q: %w", sh.ID, err)
		}
		m.mu.Lock()
		m.synced[sh.ID] = true
		m.mu.Unlock()
	}
	return nil
}

// Held implements Manager.
func (m *Table) Held() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.held))
	for k := range m.held {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// item is a lease as read from the table.
type item struct {
	id       string
	owner    string
	counter  int64
	parents  []string
	finished bool
	stealBy  string
}

func decode(it map[string]types.AttributeValue) (item, bool) {
	if _, ok := it[dynamodb.AttrLeaseCounter]; !ok {
		return item{}, false // a checkpoint-only item (not a shard)
	}
	var out item
	if v, ok := it[dynamodb.AttrLane].(*types.AttributeValueMemberS); ok {
		out.id = v.Value
	}
	if v, ok := it[dynamodb.AttrLeaseOwner].(*types.AttributeValueMemberS); ok {
		out.owner = v.Value
	}
	if v, ok := it[dynamodb.AttrLeaseCounter].(*types.AttributeValueMemberN); ok {
		out.counter, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	if v, ok := it[dynamodb.AttrParents].(*types.AttributeValueMemberSS); ok {
		out.parents = v.Value
	}
	if v, ok := it[dynamodb.AttrFinished].(*types.AttributeValueMemberBOOL); ok {
		out.finished = v.Value
	}
	if v, ok := it[dynamodb.AttrStealBy].(*types.AttributeValueMemberS); ok {
		out.stealBy = v.Value
	}
	return out, true
}

// renew bumps a held lease's counter, conditional on owner and counter.
// When the condition fails but the item still names this worker as owner,
// an earlier renewal whose response was lost (a timeout, a cancelled call)
// did apply: the lease is still ours and the counter is adopted.
func (m *Table) renew(ctx context.Context, shard string, h *held) (stealBy string, gone, lost bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return "", true, false, nil
	}
	for attempt := 0; attempt < 2; attempt++ {
		out, err := m.cfg.Client.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: aws.String(m.cfg.Table), Key: m.key(shard),
			UpdateExpression:                    aws.String("SET #lc = :next"),
			ConditionExpression:                 aws.String("#lo = :me AND #lc = :c"),
			ExpressionAttributeNames:            map[string]string{"#lc": dynamodb.AttrLeaseCounter, "#lo": dynamodb.AttrLeaseOwner},
			ExpressionAttributeValues:           map[string]types.AttributeValue{":next": n(h.counter + 1), ":me": s(m.cfg.Owner), ":c": n(h.counter)},
			ReturnValues:                        types.ReturnValueAllNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if old, ok := decode(ccf.Item); ok && old.owner == m.cfg.Owner && attempt == 0 {
				h.counter = old.counter
				continue
			}
			h.gone = true
			return "", false, true, nil
		}
		if err != nil {
			return "", false, false, fmt.Errorf("renew lease of shard %q: %w", shard, err)
		}
		h.counter++
		it, _ := decode(out.Attributes)
		return it.stealBy, false, false, nil
	}
	h.gone = true
	return "", false, true, nil
}

// Tick implements Manager.
func (m *Table) Tick(ctx context.Context) (Changes, error) {
	// A lease write cancelled in flight may have applied unseen; finish
	// the round's writes even when ctx ends (each bounded by a timeout).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*m.cfg.RenewInterval+5*time.Second)
	defer cancel()
	var ch Changes
	m.mu.Lock()
	hs := make(map[string]*held, len(m.held))
	for k, v := range m.held {
		hs[k] = v
	}
	m.mu.Unlock()

	// 1. Renew what we hold.
	var errs []error
	for _, id := range sortedHeld(hs) {
		stealBy, gone, lost, err := m.renew(ctx, id, hs[id])
		if err != nil {
			errs = append(errs, err) // transient: the lease expires only after FailoverTime
			continue
		}
		if gone {
			continue // released or finished meanwhile
		}
		m.mu.Lock()
		if lost {
			delete(m.held, id)
			delete(m.yielding, id)
			ch.Lost = append(ch.Lost, id)
			m.log.Warn("lease lost", slog.String("shard", id))
		} else if stealBy != "" && stealBy != m.cfg.Owner && !m.yielding[id] {
			m.yielding[id] = true
			ch.Yield = append(ch.Yield, id)
			m.log.Info("lease requested by another worker; yielding", slog.String("shard", id), slog.String("by", stealBy))
		}
		m.mu.Unlock()
	}

	// 2. Read every lease of the pipeline.
	raw, err := dynamodb.QueryPipeline(ctx, m.cfg.Client, m.cfg.Table, m.cfg.Pipeline)
	if err != nil {
		return ch, errors.Join(append(errs, fmt.Errorf("list leases of pipeline %q: %w", m.cfg.Pipeline, err))...)
	}
	now := m.cfg.Now()
	items := map[string]item{}
	finished := map[string]bool{}
	parents := map[string][]string{}
	seenAt := map[string]time.Time{} // when each lease last changed, as seen here
	m.mu.Lock()
	for _, r := range raw {
		it, ok := decode(r)
		if !ok {
			continue
		}
		items[it.id] = it
		finished[it.id] = it.finished
		parents[it.id] = it.parents
		if sv, ok := m.seen[it.id]; !ok || sv.owner != it.owner || sv.counter != it.counter {
			m.seen[it.id] = seen{owner: it.owner, counter: it.counter, at: now}
		}
		seenAt[it.id] = m.seen[it.id].at
	}
	expired := func(it item) bool {
		return it.owner != "" && it.owner != m.cfg.Owner && now.Sub(seenAt[it.id]) > m.cfg.FailoverTime
	}
	// Workers are the owners of live leases, and this one.
	load := map[string]int{m.cfg.Owner: 0}
	eligibleN := 0
	for _, it := range items {
		if !eligible(it.id, finished, parents) {
			continue
		}
		eligibleN++
		if it.owner != "" && !expired(it) {
			load[it.owner]++
		}
	}
	mine := 0
	for id := range m.held {
		if !m.yielding[id] {
			mine++
		}
	}
	m.mu.Unlock()
	target := (eligibleN + len(load) - 1) / len(load)

	// 3. Take free and expired eligible leases up to the target.
	var candidates []item
	for _, it := range items {
		if !eligible(it.id, finished, parents) || (it.owner != "" && !expired(it)) {
			continue
		}
		// A lease handed over on request is reserved for the worker that
		// asked, until it has sat unclaimed for FailoverTime.
		if it.owner == "" && it.stealBy != "" && it.stealBy != m.cfg.Owner && now.Sub(seenAt[it.id]) <= m.cfg.FailoverTime {
			continue
		}
		candidates = append(candidates, it)
	}
	sort.Slice(candidates, func(i, j int) bool {
		// Leases we asked for first, then expired ones, then by id.
		ai, aj := m.wasAsked(candidates[i].id), m.wasAsked(candidates[j].id)
		if ai != aj {
			return ai
		}
		return candidates[i].id < candidates[j].id
	})
	for _, it := range candidates {
		if mine >= target {
			break
		}
		ok, err := m.take(ctx, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			mine++
			ch.Gained = append(ch.Gained, it.id)
		}
	}

	// 4. Below target with nothing free: ask the most loaded worker for one.
	if mine < target {
		victim, most := "", target
		for o, c := range load {
			if o != m.cfg.Owner && (c > most || (c == most && victim != "" && o < victim)) {
				victim, most = o, c
			}
		}
		if victim != "" {
			var pick []string
			for _, it := range items {
				if it.owner == victim && it.stealBy == "" && eligible(it.id, finished, parents) {
					pick = append(pick, it.id)
				}
			}
			sort.Strings(pick)
			if len(pick) > 0 {
				if err := m.ask(ctx, pick[0], victim); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return ch, errors.Join(errs...)
}

func sortedHeld(hs map[string]*held) []string {
	out := make([]string, 0, len(hs))
	for k := range hs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *Table) wasAsked(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.asked[id]
	return ok
}

// take leases a free or expired shard, conditional on the owner and
// counter this worker saw.
func (m *Table) take(ctx context.Context, it item) (bool, error) {
	cond := "#lc = :c AND "
	values := map[string]types.AttributeValue{":c": n(it.counter), ":next": n(it.counter + 1), ":me": s(m.cfg.Owner)}
	if it.owner == "" {
		cond += "attribute_not_exists(#lo)"
	} else {
		cond += "#lo = :prev"
		values[":prev"] = s(it.owner)
	}
	_, err := m.cfg.Client.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: aws.String(m.cfg.Table), Key: m.key(it.id),
		UpdateExpression:          aws.String("SET #lo = :me, #lc = :next REMOVE #sb"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#lc": dynamodb.AttrLeaseCounter, "#lo": dynamodb.AttrLeaseOwner, "#sb": dynamodb.AttrStealBy},
		ExpressionAttributeValues: values,
	})
	if isCCF(err) {
		return false, nil // another worker was faster
	}
	if err != nil {
		return false, fmt.Errorf("take lease of shard %q: %w", it.id, err)
	}
	m.mu.Lock()
	m.held[it.id] = &held{counter: it.counter + 1}
	delete(m.asked, it.id)
	m.mu.Unlock()
	if it.owner != "" {
		m.log.Warn("took expired lease", slog.String("shard", it.id), slog.String("from", it.owner))
	} else {
		m.log.Info("took lease", slog.String("shard", it.id))
	}
	return true, nil
}

// ask sets steal_by on a lease held by victim: the victim yields it at its
// next renewal.
func (m *Table) ask(ctx context.Context, shard, victim string) error {
	_, err := m.cfg.Client.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: aws.String(m.cfg.Table), Key: m.key(shard),
		UpdateExpression:          aws.String("SET #sb = :me"),
		ConditionExpression:       aws.String("#lo = :victim AND attribute_not_exists(#sb)"),
		ExpressionAttributeNames:  map[string]string{"#lo": dynamodb.AttrLeaseOwner, "#sb": dynamodb.AttrStealBy},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": s(m.cfg.Owner), ":victim": s(victim)},
	})
	if isCCF(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ask for lease of shard %q: %w", shard, err)
	}
	m.mu.Lock()
	m.asked[shard] = m.cfg.Now()
	m.mu.Unlock()
	m.log.Info("asked for lease", slog.String("shard", shard), slog.String("owner", victim))
	return nil
}

// Release implements Manager: the lease becomes free (owner and steal
// request removed, counter bumped).
func (m *Table) Release(ctx context.Context, shard string) error {
	return m.letGo(ctx, shard, false)
}

// Finish implements Manager.
func (m *Table) Finish(ctx context.Context, shard string) error {
	return m.letGo(ctx, shard, true)
}

func (m *Table) letGo(ctx context.Context, shard string, finish bool) error {
	op := "release"
	if finish {
		op = "finish"
	}
	m.mu.Lock()
	h := m.held[shard]
	m.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%s lease of shard %q: %w", op, shard, ErrNotHeld)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	expr := "SET #lc = :next"
	values := map[string]types.AttributeValue{":next": n(h.counter + 1), ":me": s(m.cfg.Owner), ":c": n(h.counter)}
	names := map[string]string{"#lc": dynamodb.AttrLeaseCounter, "#lo": dynamodb.AttrLeaseOwner}
	if finish {
		expr += ", #fin = :true"
		names["#fin"] = dynamodb.AttrFinished
		values[":true"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		values[":next"], values[":c"] = n(h.counter+1), n(h.counter)
		_, err = m.cfg.Client.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: aws.String(m.cfg.Table), Key: m.key(shard),
			UpdateExpression:                    aws.String(expr + " REMOVE #lo"),
			ConditionExpression:                 aws.String("#lo = :me AND #lc = :c"),
			ExpressionAttributeNames:            names,
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) && attempt == 0 {
			if old, ok := decode(ccf.Item); ok && old.owner == m.cfg.Owner {
				h.counter = old.counter // our own earlier write applied unseen
				continue
			}
		}
		break
	}
	lost := isCCF(err)
	if err != nil && !lost {
		return fmt.Errorf("%s lease of shard %q: %w", op, shard, err)
	}
	h.gone = true
	m.mu.Lock()
	delete(m.held, shard)
	delete(m.yielding, shard)
	m.mu.Unlock()
	if lost {
		return fmt.Errorf("%s lease of shard %q: %w", op, shard, ErrNotHeld)
	}
	if finish {
		m.log.Info("lease finished", slog.String("shard", shard))
	} else {
		m.log.Info("lease released", slog.String("shard", shard))
	}
	return nil
}

// Fenced implements dynamodb.Fence: write runs with this worker's owner id
// and the lease counter, while the lease is not being renewed.
func (m *Table) Fenced(ctx context.Context, pipeline, lane string, write func(string, int64) error) error {
	m.mu.Lock()
	h := m.held[lane]
	m.mu.Unlock()
	if pipeline != m.cfg.Pipeline || h == nil {
		return fmt.Errorf("lane %q: %w", lane, ErrNotHeld)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return fmt.Errorf("lane %q: %w", lane, ErrNotHeld)
	}
	return write(m.cfg.Owner, h.counter)
}
