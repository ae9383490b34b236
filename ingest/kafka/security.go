package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/sasl"
	saslaws "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// buildTLS reads the configured CA and client certificate files.
func buildTLS(c *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // documented test-only switch
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read tls ca_file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// The key file's content never reaches the error: LoadX509KeyPair
			// reports only what is wrong with it.
			return nil, fmt.Errorf("load tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// buildSASL returns the SASL mechanism of c. For AWS_MSK_IAM it resolves
// the credentials provider (the SDK default chain unless one is injected);
// credentials themselves are retrieved, and refreshed, per connection.
func buildSASL(ctx context.Context, c Config) (sasl.Mechanism, error) {
	s := c.SASL
	switch s.Mechanism {
	case MechanismPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case MechanismScram256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case MechanismScram512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	case MechanismMSKIAM:
		prov, err := awsCredentials(ctx, c)
		if err != nil {
			return nil, err
		}
		return mskIAM(prov, c.ClientID), nil
	}
	return nil, fmt.Errorf("build sasl: mechanism %q: %w", s.Mechanism, ErrConfig)
}

// awsCredentials returns the injected provider or the default chain's.
func awsCredentials(ctx context.Context, c Config) (aws.CredentialsProvider, error) {
	if c.AWSCredentials != nil {
		return c.AWSCredentials, nil
	}
	load := c.LoadAWSConfig
	if load == nil {
		load = func(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) }
	}
	ac, err := load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load aws config for AWS_MSK_IAM: %w", err)
	}
	if ac.Credentials == nil {
		return nil, errors.New("load aws config for AWS_MSK_IAM: no credentials provider")
	}
	return ac.Credentials, nil
}

// mskIAM is the AWS_MSK_IAM mechanism signing with prov's credentials.
func mskIAM(prov aws.CredentialsProvider, clientID string) sasl.Mechanism {
	return saslaws.ManagedStreamingIAM(func(ctx context.Context) (saslaws.Auth, error) {
		cr, err := prov.Retrieve(ctx)
		if err != nil {
			return saslaws.Auth{}, fmt.Errorf("retrieve aws credentials for AWS_MSK_IAM: %w", err)
		}
		return saslaws.Auth{
			AccessKey:    cr.AccessKeyID,
			SecretKey:    cr.SecretAccessKey,
			SessionToken: cr.SessionToken,
			UserAgent:    "streamd/" + clientID,
		}, nil
	})
}
