package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// rawPage is one page of a List with its items still JSON: about a third
// of their size decoded, so that the next page can be fetched while the
// workers review this one without holding two decoded pages. Workers
// decode the items, in parallel.
type rawPage struct {
	Metadata metav1.ListMeta   `json:"metadata"`
	Items    []json.RawMessage `json:"items"`
}

// item is one object to review, as listed.
type item struct {
	raw json.RawMessage
	res *resource
}

// decode returns the object of an item. Items of built-in lists carry no
// apiVersion and kind: they are set from the resource.
func (it item) decode() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(it.raw, &u.Object); err != nil {
		return nil, fmt.Errorf("decoding a %s: %w", it.res.gvr.String(), err)
	}
	if u.Object == nil {
		return nil, fmt.Errorf("decoding a %s: null item", it.res.gvr.String())
	}
	if u.GetKind() == "" {
		u.SetKind(it.res.kind)
	}
	if u.GetAPIVersion() == "" {
		u.SetAPIVersion(it.res.gvr.GroupVersion().String())
	}
	return u, nil
}

// rawPages lists gvr across all namespaces a page at a time, calling each
// with every page, as pages does, without decoding the items.
func (r *run) rawPages(ctx context.Context, gvr schema.GroupVersionResource, each func(*rawPage) error) (int, error) {
	var segments []string
	if gvr.Group == "" {
		segments = []string{"/api", gvr.Version, gvr.Resource}
	} else {
		segments = []string{"/apis", gvr.Group, gvr.Version, gvr.Resource}
	}
	cont := ""
	n := 0
	for {
		req := r.a.rest.Get().AbsPath(segments...)
		if r.a.opts.ChunkSize > 0 {
			req = req.Param("limit", strconv.FormatInt(r.a.opts.ChunkSize, 10))
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		body, err := req.Do(ctx).Raw()
		if apierrors.IsNotFound(err) {
			r.log.V(1).Info("Kind no longer served", "resource", gvr.String())
			return n, nil
		}
		if err != nil {
			var status apierrors.APIStatus
			if apierrors.IsResourceExpired(err) && errors.As(err, &status) && status.Status().Continue != "" {
				r.log.Info("List continuation expired; continuing at a newer version", "resource", gvr.String(), "pages", n)
				cont = status.Status().Continue
				continue
			}
			return n, fmt.Errorf("listing %s (page %d): %w", gvr.String(), n+1, err)
		}
		page := &rawPage{}
		if err := json.Unmarshal(body, page); err != nil {
			return n, fmt.Errorf("listing %s (page %d): decoding: %w", gvr.String(), n+1, err)
		}
		n++
		if err := each(page); err != nil {
			return n, err
		}
		if page.Metadata.Continue == "" {
			return n, nil
		}
		cont = page.Metadata.Continue
	}
}
