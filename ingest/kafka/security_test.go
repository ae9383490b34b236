package kafka

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/streamd/streamd/internal/testenv"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string // client
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := &testPKI{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	cDER, cKey := leaf(3, "streamd", x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM("client.pem", "CERTIFICATE", cDER)
	p.keyFile = writePEM("client-key.pem", "EC PRIVATE KEY", keyDER(cKey))
	return p
}

// consumeOne runs a source with cfg until it delivered want records or
// failed; it returns Run's error (nil after a clean stop).
func consumeOne(t *testing.T, cfg Config, want int) (int, error) {
	t.Helper()
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	deadline := time.After(30 * time.Second)
	for h.count() < want {
		select {
		case err := <-h.done:
			return h.count(), err
		case <-deadline:
			t.Fatalf("no %d records within 30s (got %d)", want, h.count())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return h.count(), h.stop()
}

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	other := newPKI(t) // a CA that did not sign the broker
	k := testenv.Kafka(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}))
	k.CreateTopic(t, "tls", 1)
	k.Produce(t, makeRecords("tls", 1, 5, 0), kgo.DialTLSConfig(&tls.Config{
		RootCAs: pki.pool, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
			return &c, err
		},
	}))
	for _, tc := range []struct {
		name    string
		tls     TLSConfig
		wantErr string
	}{
		{"ca and client cert", TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}, ""},
		{"unknown CA", TLSConfig{CAFile: other.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}, "certificate"},
		{"no client cert", TLSConfig{CAFile: pki.caFile}, "connect to brokers"},
		{"missing ca file", TLSConfig{CAFile: filepath.Join(pki.dir, "nope.pem")}, "read tls ca_file"},
		{"key is not a key", TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.caFile}, "load tls client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(k, "gtls-"+strings.ReplaceAll(tc.name, " ", "-"), "tls")
			cfg.TLS = &tc.tls
			cfg.ConnectTimeout = 5 * time.Second
			n, err := consumeOne(t, cfg, 5)
			if tc.wantErr == "" {
				if err != nil || n != 5 {
					t.Fatalf("got %d records, err %v; want 5 and no error", n, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSASLAndSecretRedaction(t *testing.T) {
	const (
		user     = "streamd-user"
		password = "s3cr3t-Pa55word-do-not-leak"
	)
	k := testenv.Kafka(t, kfake.EnableSASL(),
		kfake.Superuser(MechanismPlain, user, password),
		kfake.Superuser(MechanismScram256, user, password),
		kfake.Superuser(MechanismScram512, user, password))
	k.CreateTopic(t, "sasl", 1)
	k.Produce(t, makeRecords("sasl", 1, 5, 0), kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
	for _, mech := range []string{MechanismPlain, MechanismScram256, strings.ToLower(MechanismScram512)} {
		for _, good := range []bool{true, false} {
			name := fmt.Sprintf("%s/good=%v", mech, good)
			t.Run(name, func(t *testing.T) {
				pw := password
				if !good {
					pw = password + "-wrong"
				}
				var logs bytes.Buffer
				reg := prometheus.NewRegistry()
				cfg := testConfig(k, "gsasl-"+mech+fmt.Sprint(good), "sasl")
				cfg.SASL = &SASLConfig{Mechanism: mech, Username: user, Password: pw}
				cfg.ConnectTimeout = 5 * time.Second
				cfg.Registerer = reg
				cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				cfg.Logger.Info("config", slog.Any("sasl", cfg.SASL)) // a careless caller logging the config
				n, err := consumeOne(t, cfg, 5)
				if good {
					if err != nil || n != 5 {
						t.Fatalf("got %d records, err %v; want 5 and no error", n, err)
					}
				} else if err == nil || !strings.Contains(err.Error(), "connect to brokers") {
					// kfake drops the connection on a failed
					// authentication (EOF); Kafka answers
					// SASL_AUTHENTICATION_FAILED. Either fails Run.
					t.Fatalf("Run = %v, want a failed connection", err)
				}
				var metrics bytes.Buffer
				mfs, gerr := reg.Gather()
				if gerr != nil {
					t.Fatal(gerr)
				}
				for _, mf := range mfs {
					if _, err := expfmt.MetricFamilyToText(&metrics, mf); err != nil {
						t.Fatal(err)
					}
				}
				everything := map[string]string{
					"logs": logs.String(), "metrics": metrics.String(),
					"error": fmt.Sprint(err), "%v": fmt.Sprintf("%v %+v %#v", *cfg.SASL, cfg.SASL, *cfg.SASL),
				}
				for where, text := range everything {
					if strings.Contains(text, password) {
						t.Errorf("the password appears in %s", where)
					}
				}
				if !strings.Contains(logs.String(), "kafka client") {
					t.Error("no client logs captured: the redaction check would prove nothing")
				}
			})
		}
	}
}

func TestMSKIAMUsesDefaultCredentialChain(t *testing.T) {
	const (
		akid   = "AKIDSTREAMDTEST00001"
		secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSTREAMDKEY"
		token  = "session-token-from-the-chain"
		host   = "b-1.streamd.abc123.c2.kafka.eu-west-1.amazonaws.com"
	)
	// The SDK default chain reads the environment first; keep shared
	// files and IMDS out of it.
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	src, err := New(Config{Brokers: []string{host + ":9098"}, Topics: []string{"t"}, Group: "g",
		SASL: &SASLConfig{Mechanism: "aws_msk_iam"}})
	if err != nil {
		t.Fatal(err)
	}
	if src.cfg.TLS == nil {
		t.Fatal("AWS_MSK_IAM did not turn TLS on")
	}
	mech, err := buildSASL(context.Background(), src.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mech.Name() != "AWS_MSK_IAM" {
		t.Fatalf("mechanism %q", mech.Name())
	}
	_, msg, err := mech.Authenticate(context.Background(), host+":9098")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte(secret)) {
		t.Fatal("the secret key is in the SASL message")
	}
	var kv map[string]string
	if err := json.Unmarshal(msg, &kv); err != nil {
		t.Fatalf("SASL message is not JSON: %v", err)
	}
	if !strings.HasPrefix(kv["x-amz-credential"], akid+"/") || !strings.Contains(kv["x-amz-credential"], "/eu-west-1/kafka-cluster/aws4_request") {
		t.Errorf("x-amz-credential = %q, want the chain's key for eu-west-1 kafka-cluster", kv["x-amz-credential"])
	}
	if kv["x-amz-security-token"] != token {
		t.Errorf("x-amz-security-token = %q, want the chain's session token", kv["x-amz-security-token"])
	}
	if kv["action"] != "kafka-cluster:Connect" || kv["host"] != host {
		t.Errorf("action %q host %q", kv["action"], kv["host"])
	}
	// The signature is what the SDK's own SigV4 presigner makes with the
	// chain's secret for the same request and instant.
	at, err := time.Parse("20060102T150405Z", kv["x-amz-date"])
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"Action": {"kafka-cluster:Connect"}, "X-Amz-Expires": {"300"}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/?"+strings.ReplaceAll(q.Encode(), "+", "%20"), nil)
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token},
		req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "kafka-cluster", "eu-west-1", at)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(signed)
	if want := u.Query().Get("X-Amz-Signature"); kv["x-amz-signature"] != want {
		t.Errorf("x-amz-signature = %s, want %s (SDK presign with the chain's secret)", kv["x-amz-signature"], want)
	}

	// An injected provider replaces the chain.
	src.cfg.AWSCredentials = credentials.NewStaticCredentialsProvider("AKIDINJECTED00000001", "x", "")
	mech, err = buildSASL(context.Background(), src.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, msg, err = mech.Authenticate(context.Background(), host+":9098"); err != nil || !bytes.Contains(msg, []byte("AKIDINJECTED00000001/")) {
		t.Errorf("injected provider not used: %s, %v", msg, err)
	}

	// A failing AWS config load fails Run before any connection.
	src2, err := New(Config{Brokers: []string{host + ":9098"}, Topics: []string{"t"}, Group: "g",
		SASL: &SASLConfig{Mechanism: MechanismMSKIAM},
		LoadAWSConfig: func(context.Context) (aws.Config, error) {
			return aws.Config{}, errors.New("no aws profile")
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := src2.Run(context.Background(), newResumer(), make(chan streamdChunk)); err == nil || !strings.Contains(err.Error(), "no aws profile") {
		t.Fatalf("Run = %v, want the config load error", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Brokers: []string{"127.0.0.1:9092"}, Topics: []string{"t"}, Group: "g"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }},
		{"bad broker", func(c *Config) { c.Brokers = []string{"kafka://x"} }},
		{"no group", func(c *Config) { c.Group = "" }},
		{"no topics", func(c *Config) { c.Topics = nil }},
		{"topics and regex", func(c *Config) { c.TopicRegex = "sales.*" }},
		{"bad regex", func(c *Config) { c.Topics, c.TopicRegex = nil, "sales[" }},
		{"bad start", func(c *Config) { c.Start = "beginning" }},
		{"bad mechanism", func(c *Config) { c.SASL = &SASLConfig{Mechanism: "GSSAPI"} }},
		{"plain without password", func(c *Config) { c.SASL = &SASLConfig{Mechanism: "PLAIN", Username: "u"} }},
		{"iam with password", func(c *Config) { c.SASL = &SASLConfig{Mechanism: "AWS_MSK_IAM", Password: "p"} }},
		{"cert without key", func(c *Config) { c.TLS = &TLSConfig{CertFile: "c.pem"} }},
		{"negative timeout", func(c *Config) { c.RevokeTimeout = -time.Second }},
		{"tiny buffer", func(c *Config) { c.MaxBufferedBytes = 100 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
	s, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Start != StartEarliest || s.cfg.ChunkRecords != DefaultChunkRecords || s.cfg.SessionTimeout != DefaultSessionTimeout {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	pw := SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "hunter2"}
	if strings.Contains(pw.String()+fmt.Sprintf("%v %+v %#v", pw, pw, pw), "hunter2") {
		t.Error("SASLConfig formatting shows the password")
	}
}
