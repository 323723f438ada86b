package datasync

import (
	"github.com/spf13/pflag"

	"github.com/portcullis-dev/portcullis/controllers"
)

// Options configures the sync. Bind them with AddFlags.
type Options struct {
	// KeepManagedFields keeps metadata.managedFields and the
	// kubectl.kubernetes.io/last-applied-configuration annotation of synced
	// objects (--sync-keep-managed-fields). By default both are dropped
	// before an object reaches the inventory: policies rarely read them, and
	// they are often most of an object's bytes.
	KeepManagedFields bool

	// Replica is this replica, whose entry the sync writes into the
	// status.byPod of the Config, as Gatekeeper does. Not a flag: the
	// manager sets it; without an ID no status is written.
	Replica controllers.Replica
}

// AddFlags binds the options to flags in fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.KeepManagedFields, "sync-keep-managed-fields", o.KeepManagedFields,
		"keep metadata.managedFields and the kubectl last-applied-configuration annotation of objects synced into data.inventory")
}
