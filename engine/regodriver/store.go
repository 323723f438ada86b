package regodriver

import (
	"context"
	"fmt"

	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// inventoryRoot is where AddData writes: data.inventory.
var inventoryRoot = storage.Path{"inventory"}

// newStore returns an inmem store holding an empty data.inventory. Values
// are converted to AST once, when written, rather than on every read.
func newStore(ctx context.Context) (storage.Store, error) {
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	err := storage.Txn(ctx, store, storage.WriteParams, func(txn storage.Transaction) error {
		return storage.MakeDir(ctx, store, txn, inventoryRoot)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: creating data.inventory: %w", clienterrors.ErrWrite, err)
	}
	return store, nil
}

// writeData puts value at path, creating the parent documents as needed.
func writeData(ctx context.Context, store storage.Store, path storage.Path, value any) error {
	if len(path) == 0 {
		return fmt.Errorf("%w: path must contain at least one path element: %+v", clienterrors.ErrPathInvalid, path)
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return fmt.Errorf("%w: %w", clienterrors.ErrTransaction, err)
	}
	if _, err := store.Read(ctx, txn, path); storage.IsNotFound(err) {
		if err := storage.MakeDir(ctx, store, txn, path[:len(path)-1]); err != nil {
			store.Abort(ctx, txn)
			return fmt.Errorf("%w: unable to make directory: %w", clienterrors.ErrWrite, err)
		}
	} else if err != nil {
		store.Abort(ctx, txn)
		return fmt.Errorf("%w: %w", clienterrors.ErrRead, err)
	}
	if err := store.Write(ctx, txn, storage.AddOp, path, value); err != nil {
		store.Abort(ctx, txn)
		return fmt.Errorf("%w: unable to write data: %w", clienterrors.ErrWrite, err)
	}
	if err := store.Commit(ctx, txn); err != nil {
		return fmt.Errorf("%w: %w", clienterrors.ErrTransaction, err)
	}
	return nil
}

// removeData deletes path; a path that does not exist is not an error.
// Removing data.inventory itself leaves it empty rather than undefined.
func removeData(ctx context.Context, store storage.Store, path storage.Path) error {
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return fmt.Errorf("%w: %w", clienterrors.ErrTransaction, err)
	}
	if err := store.Write(ctx, txn, storage.RemoveOp, path, nil); err != nil {
		store.Abort(ctx, txn)
		if storage.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%w: unable to remove data: %w", clienterrors.ErrWrite, err)
	}
	if len(path) == len(inventoryRoot) {
		if err := storage.MakeDir(ctx, store, txn, inventoryRoot); err != nil {
			store.Abort(ctx, txn)
			return fmt.Errorf("%w: recreating data.inventory: %w", clienterrors.ErrWrite, err)
		}
	}
	if err := store.Commit(ctx, txn); err != nil {
		return fmt.Errorf("%w: %w", clienterrors.ErrTransaction, err)
	}
	return nil
}

func inventoryPath(path storage.Path) storage.Path {
	out := make(storage.Path, 0, len(inventoryRoot)+len(path))
	out = append(out, inventoryRoot...)
	return append(out, path...)
}
