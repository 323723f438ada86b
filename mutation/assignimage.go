package mutation

import (
	"fmt"

	mutationsv1alpha1 "github.com/portcullis-dev/portcullis/api/mutations/v1alpha1"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

func (m *Mutator) buildAssignImage(raw map[string]any) error {
	var spec mutationsv1alpha1.AssignImageSpec
	if err := decodeSpec(raw, &spec); err != nil {
		return err
	}
	p := &spec.Parameters
	if err := m.common(spec.Location, &spec.Match, p.PathTests); err != nil {
		return err
	}
	if err := noMetadata(KindAssignImage, m.loc); err != nil {
		return err
	}
	if last := m.loc.Last(); last.Kind == path.List {
		return fmt.Errorf("spec.location: ends with the list selector %s: an AssignImage's location is an image string, such as spec.containers[name: *].image", last.String())
	}
	if err := keyUnchanged(m.loc); err != nil {
		return err
	}
	if err := checkImageParts(p.AssignDomain, p.AssignPath, p.AssignTag); err != nil {
		return err
	}
	var err error
	if m.applyTo, err = parseApplyTo(spec.ApplyTo); err != nil {
		return err
	}
	if err := checkKinds(&spec.Match, m.applyTo); err != nil {
		return err
	}
	m.set = &imageSetter{domain: p.AssignDomain, path: p.AssignPath, tag: p.AssignTag}
	m.term, m.mustTerminate = terminalString, true
	return nil
}

// imageSetter sets the parts of an image string it has, keeping the
// others; a missing image gets the parts set.
type imageSetter struct {
	domain, path, tag string
}

func (s *imageSetter) set(obj map[string]any, key string, _ objectMeta) (bool, error) {
	cur, exists := obj[key]
	old := ""
	if exists && cur != nil {
		str, ok := cur.(string)
		if !ok {
			return false, fmt.Errorf("the object has %s there, not an image string", describe(cur))
		}
		old = str
	}
	img := parseImage(old)
	if s.domain != "" {
		img.domain = s.domain
	}
	if s.path != "" {
		img.path = s.path
	}
	if s.tag != "" {
		img.tag = s.tag
	}
	v := img.String()
	if exists && cur == v {
		return false, nil
	}
	obj[key] = v
	return true, nil
}
