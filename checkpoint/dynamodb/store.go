package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
)

// Attribute names of the table (see the package documentation for the
// schema). Lease attributes live on the same items.
const (
	AttrPipeline     = "pipeline"      // S, partition key
	AttrLane         = "lane"          // S, sort key
	AttrCommitted    = "committed"     // S, streamd.Position.String()
	AttrIntentFrom   = "intent_from"   // S
	AttrIntentTo     = "intent_to"     // S
	AttrOpState      = "op_state"      // B
	AttrVersion      = "ver"           // N, bumped by every checkpoint write
	AttrLeaseOwner   = "lease_owner"   // S, absent when the lease is free
	AttrLeaseCounter = "lease_counter" // N, bumped by every take, renewal and release
	AttrParents      = "parents"       // SS, parent shard ids
	AttrFinished     = "finished"      // BOOL, shard fully consumed and committed
	AttrStealBy      = "steal_by"      // S, a worker asking the owner to hand the lease over
)

// API is the part of the DynamoDB client the store and the lease manager
// use; *dynamodb.Client implements it.
type API interface {
	GetItem(ctx context.Context, in *ddb.GetItemInput, opts ...func(*ddb.Options)) (*ddb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *ddb.UpdateItemInput, opts ...func(*ddb.Options)) (*ddb.UpdateItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, opts ...func(*ddb.Options)) (*ddb.QueryOutput, error)
	CreateTable(ctx context.Context, in *ddb.CreateTableInput, opts ...func(*ddb.Options)) (*ddb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *ddb.DescribeTableInput, opts ...func(*ddb.Options)) (*ddb.DescribeTableOutput, error)
}

// Fence guards a lane's checkpoint writes with the lane's lease (see
// checkpoint/lease): a write succeeds only while the lease owner and
// counter in the table are the ones this process holds.
type Fence interface {
	// Fenced calls write with the owner and counter of the lease this
	// process holds on (pipeline, lane), while that lease is not renewed
	// concurrently. It returns an error wrapping checkpoint.ErrFenced
	// without calling write when this process holds no such lease.
	Fenced(ctx context.Context, pipeline, lane string, write func(owner string, counter int64) error) error
}

// Config configures a Store.
type Config struct {
	// Table is the DynamoDB table; EnsureTable creates it when missing.
	Table string
	// Attempts bounds the optimistic retries of PutIntent when another
	// writer changed the item between its read and its write (default 5).
	Attempts int
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Store is a checkpoint.Store backed by a DynamoDB table: one item per
// (pipeline, lane). It is safe for concurrent use.
type Store struct {
	client API
	cfg    Config
	log    *slog.Logger

	mu     sync.RWMutex
	fences map[string]Fence
}

var _ checkpoint.Store = (*Store)(nil)

// New returns a store on client and cfg.Table. It does no I/O: call
// EnsureTable before first use.
func New(client API, cfg Config) *Store {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{client: client, cfg: cfg, log: log, fences: map[string]Fence{}}
}

// SetFence makes every PutIntent and Commit of pipeline conditional on the
// lane's lease held through f (nil removes the fence). Call it before the
// pipeline runs.
func (s *Store) SetFence(pipeline string, f Fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.fences, pipeline)
		return
	}
	s.fences[pipeline] = f
}

func (s *Store) fence(pipeline string) Fence {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fences[pipeline]
}

// EnsureTable creates the table when it is missing (PAY_PER_REQUEST,
// key pipeline + lane) and waits until it is ACTIVE, at most two minutes.
func (s *Store) EnsureTable(ctx context.Context) error {
	return EnsureTable(ctx, s.client, s.cfg.Table)
}

// EnsureTable creates table when it is missing and waits until it is
// ACTIVE (bounded by ctx and two minutes). The lease manager shares it.
func EnsureTable(ctx context.Context, client API, table string) error {
	if table == "" {
		return errors.New("ensure checkpoint table: no table name")
	}
	_, err := client.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(table)})
	var nf *types.ResourceNotFoundException
	switch {
	case err == nil:
	case errors.As(err, &nf):
		_, err = client.CreateTable(ctx, &ddb.CreateTableInput{
			TableName:   aws.String(table),
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(AttrPipeline), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(AttrLane), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrPipeline), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrLane), KeyType: types.KeyTypeRange},
			},
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // another process created it first
			return fmt.Errorf("create checkpoint table %q: %w", table, err)
		}
	default:
		return fmt.Errorf("describe checkpoint table %q: %w", table, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		out, err := client.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(table)})
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("wait for checkpoint table %q: %w", table, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for checkpoint table %q to become active: %w", table, ctx.Err())
		case <-time.After(delay):
		}
	}
}

func key(pipeline, lane string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPipeline: &types.AttributeValueMemberS{Value: pipeline},
		AttrLane:     &types.AttributeValueMemberS{Value: lane},
	}
}

// Load implements checkpoint.Store with a strongly consistent read.
func (s *Store) Load(ctx context.Context, pipeline, lane string) (checkpoint.State, error) {
	st, _, err := s.load(ctx, pipeline, lane)
	if err != nil {
		return checkpoint.State{}, fmt.Errorf("load checkpoint of lane %q: %w", lane, err)
	}
	return st, nil
}

func (s *Store) load(ctx context.Context, pipeline, lane string) (checkpoint.State, int64, error) {
	out, err := s.client.GetItem(ctx, &ddb.GetItemInput{
		TableName: aws.String(s.cfg.Table), Key: key(pipeline, lane), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return checkpoint.State{}, 0, err
	}
	if out.Item == nil {
		return checkpoint.State{Lane: lane}, 0, nil
	}
	return decodeState(pipeline, out.Item)
}

// decodeState reads the checkpoint attributes of an item.
func decodeState(pipeline string, item map[string]types.AttributeValue) (checkpoint.State, int64, error) {
	st := checkpoint.State{Lane: str(item[AttrLane])}
	if c := str(item[AttrCommitted]); c != "" {
		p, err := streamd.ParsePosition(c)
		if err != nil {
			return checkpoint.State{}, 0, fmt.Errorf("decode lane %q: %w", st.Lane, err)
		}
		st.Committed, st.HasCommit = p, true
	}
	if f, t := str(item[AttrIntentFrom]), str(item[AttrIntentTo]); f != "" || t != "" {
		from, err1 := streamd.ParsePosition(f)
		to, err2 := streamd.ParsePosition(t)
		if err := errors.Join(err1, err2); err != nil {
			return checkpoint.State{}, 0, fmt.Errorf("decode intent of lane %q: %w", st.Lane, err)
		}
		st.Intent = &streamd.Intent{Pipeline: pipeline, Lane: st.Lane, From: from, To: to}
	}
	if b, ok := item[AttrOpState].(*types.AttributeValueMemberB); ok {
		st.OpState = b.Value
	}
	return st, num(item[AttrVersion]), nil
}

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func num(v types.AttributeValue) int64 {
	if n, ok := v.(*types.AttributeValueMemberN); ok {
		i, _ := strconv.ParseInt(n.Value, 10, 64)
		return i
	}
	return 0
}

// Lanes implements checkpoint.Store: a consistent Query of the pipeline's
// items (paged), sorted by lane. Lease-only items without a checkpoint are
// included with a zero state.
func (s *Store) Lanes(ctx context.Context, pipeline string) ([]checkpoint.State, error) {
	items, err := QueryPipeline(ctx, s.client, s.cfg.Table, pipeline)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints of pipeline %q: %w", pipeline, err)
	}
	out := make([]checkpoint.State, 0, len(items))
	for _, it := range items {
		st, _, err := decodeState(pipeline, it)
		if err != nil {
			return nil, fmt.Errorf("list checkpoints of pipeline %q: %w", pipeline, err)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lane < out[j].Lane })
	return out, nil
}

// QueryPipeline returns every item of pipeline with consistent reads,
// following pagination (at most 10000 pages).
func QueryPipeline(ctx context.Context, client API, table, pipeline string) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for page := 0; page < 10000; page++ {
		out, err := client.Query(ctx, &ddb.QueryInput{
			TableName:                 aws.String(table),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": AttrPipeline},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: pipeline}},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		start = out.LastEvaluatedKey
	}
	return nil, errors.New("query: more than 10000 pages")
}

// write is one conditional UpdateItem, guarded by the pipeline's fence if
// it has one. cond may be empty.
type write struct {
	set    map[string]types.AttributeValue // SET name = value
	remove []string                        // REMOVE name
	cond   string
	bump   bool // SET #bv = if_not_exists(#bv, :zero) + :one
	names  map[string]string
	values map[string]types.AttributeValue
}

// errFenceLost marks a conditional failure caused by the lease condition.
var errFenceLost = errors.New("lease condition failed")

func (s *Store) update(ctx context.Context, pipeline, lane string, w write) error {
	do := func(owner string, counter int64, fenced bool) error {
		names := map[string]string{}
		values := map[string]types.AttributeValue{}
		for k, v := range w.names {
			names[k] = v
		}
		for k, v := range w.values {
			values[k] = v
		}
		expr := ""
		i := 0
		keys := make([]string, 0, len(w.set))
		for k := range w.set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if expr == "" {
				expr = "SET "
			} else {
				expr += ", "
			}
			n, v := "#s"+strconv.Itoa(i), ":s"+strconv.Itoa(i)
			names[n], values[v] = k, w.set[k]
			expr += n + " = " + v
			i++
		}
		if w.bump {
			if expr == "" {
				expr = "SET "
			} else {
				expr += ", "
			}
			expr += "#bv = if_not_exists(#bv, :zero) + :one"
		}
		for j, k := range w.remove {
			if j == 0 {
				expr += " REMOVE "
			} else {
				expr += ", "
			}
			n := "#r" + strconv.Itoa(j)
			names[n] = k
			expr += n
		}
		cond := w.cond
		if fenced {
			names["#lo"], names["#lc"] = AttrLeaseOwner, AttrLeaseCounter
			values[":lo"] = &types.AttributeValueMemberS{Value: owner}
			values[":lc"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(counter, 10)}
			fc := "#lo = :lo AND #lc = :lc"
			if cond == "" {
				cond = fc
			} else {
				cond = "(" + cond + ") AND " + fc
			}
		}
		in := &ddb.UpdateItemInput{
			TableName:                           aws.String(s.cfg.Table),
			Key:                                 key(pipeline, lane),
			UpdateExpression:                    aws.String(expr),
			ExpressionAttributeNames:            names,
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}
		if cond != "" {
			in.ConditionExpression = aws.String(cond)
		}
		if len(values) == 0 {
			in.ExpressionAttributeValues = nil
		}
		_, err := s.client.UpdateItem(ctx, in)
		var ccf *types.ConditionalCheckFailedException
		if fenced && errors.As(err, &ccf) {
			if str(ccf.Item[AttrLeaseOwner]) != owner || num(ccf.Item[AttrLeaseCounter]) != counter {
				return fmt.Errorf("%w (lease now owned by %q, counter %d): %w", errFenceLost, str(ccf.Item[AttrLeaseOwner]), num(ccf.Item[AttrLeaseCounter]), checkpoint.ErrFenced)
			}
		}
		return err
	}
	if f := s.fence(pipeline); f != nil {
		return f.Fenced(ctx, pipeline, lane, func(owner string, counter int64) error {
			return do(owner, counter, true)
		})
	}
	return do("", 0, false)
}

// PutIntent implements checkpoint.Store. Putting the intent already open is
// a no-op (a redo); another open intent, or one that does not start after
// the committed position, is checkpoint.ErrConflict. The write is
// conditional on the item's version (and the lease, if fenced): a change by
// another writer between the read and the write is retried.
func (s *Store) PutIntent(ctx context.Context, in streamd.Intent) error {
	for attempt := 1; ; attempt++ {
		st, ver, err := s.load(ctx, in.Pipeline, in.Lane)
		if err != nil {
			return fmt.Errorf("put intent on lane %q: %w", in.Lane, err)
		}
		if st.Intent != nil {
			if st.Intent.From == in.From && st.Intent.To == in.To {
				// A redo: still check the fence, so a process that lost the
				// lane learns it before writing output.
				if f := s.fence(in.Pipeline); f != nil {
					if err := f.Fenced(ctx, in.Pipeline, in.Lane, func(string, int64) error { return nil }); err != nil {
						return fmt.Errorf("put intent on lane %q: %w", in.Lane, err)
					}
				}
				return nil
			}
			return fmt.Errorf("put intent [%s, %s] on lane %q with [%s, %s] open: %w", in.From, in.To, in.Lane, st.Intent.From, st.Intent.To, checkpoint.ErrConflict)
		}
		if st.HasCommit && in.From.Compare(st.Committed) <= 0 {
			return fmt.Errorf("put intent [%s, %s] on lane %q committed at %s: %w", in.From, in.To, in.Lane, st.Committed, checkpoint.ErrConflict)
		}
		w := write{
			set: map[string]types.AttributeValue{
				AttrIntentFrom: &types.AttributeValueMemberS{Value: in.From.String()},
				AttrIntentTo:   &types.AttributeValueMemberS{Value: in.To.String()},
				AttrVersion:    &types.AttributeValueMemberN{Value: strconv.FormatInt(ver+1, 10)},
			},
			names: map[string]string{"#v": AttrVersion},
		}
		if ver == 0 {
			w.cond = "attribute_not_exists(#v)"
		} else {
			w.cond = "#v = :v"
			w.values = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(ver, 10)}}
		}
		err = s.update(ctx, in.Pipeline, in.Lane, w)
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) && !errors.Is(err, checkpoint.ErrFenced) && attempt < s.cfg.Attempts {
			s.log.Warn("checkpoint item changed during PutIntent; retrying", slog.String("pipeline", in.Pipeline), slog.String("lane", in.Lane))
			continue
		}
		if err != nil {
			return fmt.Errorf("put intent [%s, %s] on lane %q: %w", in.From, in.To, in.Lane, err)
		}
		return nil
	}
}

// MaxOpStateBytes is the largest operator state Commit stores: a DynamoDB
// item holds at most 400 KB, and the lane's other attributes need room.
// Dedup keeps about 24 bytes per remembered key, so with this store a
// dedup step needs max_keys of about 14,000 or less (config validation
// checks it); larger states need the file store.
const MaxOpStateBytes = 340 << 10

// ErrStateTooLarge is returned by Commit for an operator state over
// MaxOpStateBytes.
var ErrStateTooLarge = errors.New("operator state too large for a DynamoDB checkpoint item")

// Commit implements checkpoint.Store: it sets the committed position and
// operator state and clears the intent in one write, conditional on the
// lease when fenced. A state over MaxOpStateBytes fails with
// ErrStateTooLarge before anything is written.
func (s *Store) Commit(ctx context.Context, in streamd.Intent, opState []byte) error {
	if len(opState) > MaxOpStateBytes {
		return fmt.Errorf("commit lane %q at %s: %d bytes of operator state (dedup / outlier keys; lower their max_keys, or use the file checkpoint store): %w",
			in.Lane, in.To, len(opState), ErrStateTooLarge)
	}
	w := write{
		set: map[string]types.AttributeValue{
			AttrCommitted: &types.AttributeValueMemberS{Value: in.To.String()},
		},
		remove: []string{AttrIntentFrom, AttrIntentTo},
	}
	if len(opState) > 0 {
		w.set[AttrOpState] = &types.AttributeValueMemberB{Value: opState}
	} else {
		w.remove = append(w.remove, AttrOpState)
	}
	// The version bump makes a concurrent PutIntent's read-then-write retry.
	w.names = map[string]string{"#bv": AttrVersion}
	w.values = map[string]types.AttributeValue{":zero": &types.AttributeValueMemberN{Value: "0"}, ":one": &types.AttributeValueMemberN{Value: "1"}}
	w.bump = true
	if err := s.update(ctx, in.Pipeline, in.Lane, w); err != nil {
		return fmt.Errorf("commit lane %q at %s: %w", in.Lane, in.To, err)
	}
	return nil
}

// Close implements checkpoint.Store; the client needs no closing.
func (s *Store) Close() error { return nil }
