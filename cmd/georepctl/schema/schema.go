// Package schema holds the JSON Schema (draft 2020-12) of what georepctl
// prints with --json, georepctl.schema.json, and checks documents against
// it: georepctl's tests and the integration tests validate what the real
// binary prints.
package schema

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed georepctl.schema.json
var source []byte

// The documents of $defs, one per command.
const (
	Status     = "status"         // status --json
	Failures   = "failures"       // failures --json
	Checkpoint = "checkpoint_doc" // checkpoint --json
	Skip       = "skip"           // failures skip --json
	Audit      = "audit_doc"      // audit --json
)

const url = "https://github.com/georep/georep/cmd/georepctl/schema/georepctl.schema.json"

var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(source))
	if err != nil {
		return nil, fmt.Errorf("georepctl.schema.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("georepctl.schema.json: %w", err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, d := range []string{Status, Failures, Checkpoint, Skip, Audit} {
		s, err := c.Compile(url + "#/$defs/" + d)
		if err != nil {
			return nil, fmt.Errorf("georepctl.schema.json: %s: %w", d, err)
		}
		out[d] = s
	}
	return out, nil
})

// Validate checks doc, a JSON document georepctl printed, against the
// schema of def (Status, Failures, ...).
func Validate(def string, doc []byte) error {
	ss, err := compiled()
	if err != nil {
		return err
	}
	s, ok := ss[def]
	if !ok {
		return fmt.Errorf("schema: no document %q", def)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return err
	}
	return nil
}
