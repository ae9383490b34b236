//go:build tools

// Package deps pins modules that adapters still being written will import,
// so concurrent work does not race on go.mod. Remove once each is imported.
package deps

import (
	_ "github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	_ "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	_ "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	_ "github.com/aws/aws-sdk-go-v2/service/firehose"
	_ "github.com/aws/aws-sdk-go-v2/service/kinesis"
	_ "github.com/opensearch-project/opensearch-go/v4"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/pkg/sasl/aws"
	_ "github.com/twmb/franz-go/plugin/kprom"
)
