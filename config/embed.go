// Package config embeds the manifests under config/ that the manager installs itself.
package config

import _ "embed"

// CRDs is config/crd/crds.yaml: the CustomResourceDefinitions Portcullis
// serves, rendered by `make manifests` from config/crd (bases plus patches).
//
//go:embed crd/crds.yaml
var CRDs []byte
