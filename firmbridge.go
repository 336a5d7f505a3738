// Package firmbridge holds the domain of the firmbridge data-sharing platform:
// raw envelopes and canonical rows, firms, consents, access events, identities,
// the service interfaces the API and the ingest runtime are written against,
// and the one set of error codes every layer speaks.
//
// It imports only the standard library. Subpackages are named after what they
// wrap (schema: ClickHouse, ingest: Kafka, api: HTTP) and never import each
// other; cmd/firmbridge wires them together.
package firmbridge

// Kafka topics. Keys are the firm's USCC so that one firm's records stay ordered.
const (
	TopicConsentEvents = "consent.events.v1"
	TopicAuditAccess   = "audit.access.v1"
)

// Data domains: each has one raw topic and one dead-letter topic.
const (
	DomainTax        = "tax"
	DomainPatent     = "patent"
	DomainOperations = "operations"
)

// Domains lists every data domain in a stable order.
var Domains = []string{DomainTax, DomainPatent, DomainOperations}

// RawTopic names the topic providers publish a domain's envelopes to.
func RawTopic(domain string) string { return "raw." + domain + ".v1" }

// DeadLetterTopic names the topic that receives a domain's rejected records.
func DeadLetterTopic(domain string) string { return "dlq." + domain + ".v1" }
