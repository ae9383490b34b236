package ddbstreams

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

func TestAppendAttributeValue(t *testing.T) {
	tests := []struct {
		name string
		av   types.AttributeValue
		want string
	}{
		{"string", &types.AttributeValueMemberS{Value: `a "q" \ é` + "\n\x01"}, `"a \"q\" \\ é\n\u0001"`},
		{"invalid utf-8", &types.AttributeValueMemberS{Value: "a\xffb"}, "\"a\ufffdb\""},
		{"exact number", &types.AttributeValueMemberN{Value: "12345678901234567890.123456789"}, `12345678901234567890.123456789`},
		{"38 digits", &types.AttributeValueMemberN{Value: "-99999999999999999999999999999.999999999"}, `-99999999999999999999999999999.999999999`},
		{"integer", &types.AttributeValueMemberN{Value: "42"}, `42`},
		{"exponent", &types.AttributeValueMemberN{Value: "1.5E+130"}, `1.5e+130`},
		{"tiny", &types.AttributeValueMemberN{Value: "1E-130"}, `1e-130`},
		{"leading plus", &types.AttributeValueMemberN{Value: "+7"}, `7`},
		{"bare fraction", &types.AttributeValueMemberN{Value: ".25"}, `0.25`},
		{"trailing dot", &types.AttributeValueMemberN{Value: "5."}, `5`},
		{"leading zeros", &types.AttributeValueMemberN{Value: "007.50"}, `7.50`},
		{"binary", &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 0xff}}, `"AAEC/w=="`},
		{"empty binary", &types.AttributeValueMemberB{Value: []byte{}}, `""`},
		{"true", &types.AttributeValueMemberBOOL{Value: true}, `true`},
		{"false", &types.AttributeValueMemberBOOL{Value: false}, `false`},
		{"null", &types.AttributeValueMemberNULL{Value: true}, `null`},
		{"nil", nil, `null`},
		{"list", &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberS{Value: "x"}, &types.AttributeValueMemberN{Value: "1.10"}, &types.AttributeValueMemberNULL{Value: true},
		}}, `["x",1.10,null]`},
		{"empty list", &types.AttributeValueMemberL{Value: nil}, `[]`},
		{"map sorted", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"z": &types.AttributeValueMemberBOOL{Value: true}, "a": &types.AttributeValueMemberS{Value: "v"}, "m": &types.AttributeValueMemberN{Value: "3"},
		}}, `{"a":"v","m":3,"z":true}`},
		{"empty map", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}, `{}`},
		{"nesting", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
				&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"n": &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}}}},
				&types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberB{Value: []byte("hi")}}},
			}},
		}}, `{"l":[{"n":[1,2.5]},["aGk="]]}`},
		{"string set", &types.AttributeValueMemberSS{Value: []string{"b", `"a"`}}, `["b","\"a\""]`},
		{"number set", &types.AttributeValueMemberNS{Value: []string{"12345678901234567890.123456789", "-1"}}, `[12345678901234567890.123456789,-1]`},
		{"binary set", &types.AttributeValueMemberBS{Value: [][]byte{[]byte("a"), {0xfe}}}, `["YQ==","/g=="]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendAttributeValue([]byte("prefix:"), tt.av)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix:"+tt.want {
				t.Fatalf("got %s, want %s", got[len("prefix:"):], tt.want)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Fatalf("%s is not valid JSON", got)
			}
		})
	}
}

func TestAppendAttributeValueBadNumber(t *testing.T) {
	for _, n := range []string{"", "abc", "1.2.3", "1e", "--1", "0x10", "1e+x", ".", "NaN", "Infinity"} {
		t.Run(n, func(t *testing.T) {
			_, err := AppendAttributeValue(nil, &types.AttributeValueMemberN{Value: n})
			if !errors.Is(err, ErrBadNumber) {
				t.Fatalf("N %q: err = %v, want ErrBadNumber", n, err)
			}
			_, err = AppendAttributeValue(nil, &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"deep": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberNS{Value: []string{"1", n}}}}}})
			if !errors.Is(err, ErrBadNumber) || !strings.Contains(err.Error(), "deep: [0]: [1]") {
				t.Fatalf("nested N %q: err = %v, want ErrBadNumber naming deep: [0]: [1]", n, err)
			}
		})
	}
}

func TestAppendChange(t *testing.T) {
	at := time.Date(2026, 11, 23, 23, 52, 15, 0, time.FixedZone("x", 3600))
	keys := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k1"}}
	newImg := map[string]types.AttributeValue{
		"pk":       &types.AttributeValueMemberS{Value: "k1"},
		"quantity": &types.AttributeValueMemberN{Value: "12345678901234567890.123456789"},
		"op":       &types.AttributeValueMemberS{Value: "user op"}, // reserved: not flattened
		"keys":     &types.AttributeValueMemberN{Value: "1"},       // reserved
	}
	oldImg := map[string]types.AttributeValue{
		"pk":       &types.AttributeValueMemberS{Value: "k1"},
		"quantity": &types.AttributeValueMemberN{Value: "1"},
	}
	rec := func(ev types.OperationType, n, o map[string]types.AttributeValue) types.Record {
		return types.Record{EventName: ev, EventID: aws.String("ev-1"), Dynamodb: &types.StreamRecord{
			ApproximateCreationDateTime: &at, SequenceNumber: aws.String("000000000000000000042"),
			Keys: keys, NewImage: n, OldImage: o}}
	}
	const meta = `"event_time":"2026-11-23T22:52:15Z","sequence_number":"000000000000000000042","event_id":"ev-1","keys":{"pk":"k1"}`
	tests := []struct {
		name string
		rec  types.Record
		want string
	}{
		{"insert", rec(types.OperationTypeInsert, newImg, nil),
			`{"op":"insert",` + meta + `,"new_image":{"keys":1,"op":"user op","pk":"k1","quantity":12345678901234567890.123456789},"old_image":null,"pk":"k1","quantity":12345678901234567890.123456789}`},
		{"modify", rec(types.OperationTypeModify, newImg, oldImg),
			`{"op":"modify",` + meta + `,"new_image":{"keys":1,"op":"user op","pk":"k1","quantity":12345678901234567890.123456789},"old_image":{"pk":"k1","quantity":1},"pk":"k1","quantity":12345678901234567890.123456789}`},
		{"remove flattens the old image", rec(types.OperationTypeRemove, nil, oldImg),
			`{"op":"remove",` + meta + `,"new_image":null,"old_image":{"pk":"k1","quantity":1},"pk":"k1","quantity":1}`},
		{"keys only", rec(types.OperationTypeRemove, nil, nil),
			`{"op":"remove",` + meta + `,"new_image":null,"old_image":null,"pk":"k1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendChange(nil, tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			var v map[string]any
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
		})
	}
	for _, bad := range []types.Record{
		{EventName: "DROP", Dynamodb: &types.StreamRecord{}},
		{EventName: types.OperationTypeInsert},
		{EventName: types.OperationTypeInsert, Dynamodb: &types.StreamRecord{NewImage: map[string]types.AttributeValue{"x": &types.AttributeValueMemberN{Value: "x1"}}}},
	} {
		if _, err := AppendChange(nil, bad); err == nil {
			t.Errorf("AppendChange(%+v) = nil error", bad)
		}
	}
	for _, name := range []string{"op", "event_time", "sequence_number", "event_id", "keys", "new_image", "old_image"} {
		if !IsReserved(name) {
			t.Errorf("IsReserved(%q) = false", name)
		}
	}
	if IsReserved("quantity") {
		t.Error("IsReserved(quantity) = true")
	}
}

func BenchmarkAppendChange(b *testing.B) {
	at := time.Now()
	img := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "customer-000123"}, "qty": &types.AttributeValueMemberN{Value: "12345678901234567890.123456789"},
		"region": &types.AttributeValueMemberS{Value: "EU-WEST"}, "tags": &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"nested": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"x": &types.AttributeValueMemberBOOL{Value: true}}},
	}
	rec := types.Record{EventName: types.OperationTypeModify, EventID: aws.String("e"), Dynamodb: &types.StreamRecord{
		ApproximateCreationDateTime: &at, SequenceNumber: aws.String("000000000000000000042"),
		Keys: map[string]types.AttributeValue{"pk": img["pk"]}, NewImage: img, OldImage: img}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendChange(buf[:0], rec)
	}
	b.SetBytes(int64(len(buf)))
}
