// Command yamlcheck reads a YAML stream on stdin the way kubectl does and prints, for each document, one JSON line:
// {"json": <the object>} or {"error": "<message>"}. Documents whose JSON is null (empty documents) are skipped, as
// kubectl skips them.
//
// It is a test oracle for `lanes inject`: kubectl splits a stream on lines starting with "---" (apimachinery's
// YAMLReader) and converts each document with sigs.k8s.io/yaml.YAMLToJSON (go-yaml v2 underneath), so this is the
// reading whose meaning the output of `lanes inject` must preserve. With -strict, duplicate mapping keys are errors
// (sigs.k8s.io/yaml.YAMLToJSONStrict).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// documents splits a stream like k8s.io/apimachinery/pkg/util/yaml.YAMLReader: a line beginning with "---" and
// followed only by spaces or a comment ends a document.
func documents(stream []byte) ([][]byte, error) {
	var docs [][]byte
	var current bytes.Buffer
	reader := bufio.NewReader(bytes.NewReader(stream))
	for {
		line, err := reader.ReadBytes('\n')
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte("---")) {
				rest := strings.TrimSpace(string(line[3:]))
				if rest != "" && rest[0] != '#' {
					return nil, fmt.Errorf("invalid Yaml document separator: %s", rest)
				}
				if current.Len() > 0 {
					docs = append(docs, append([]byte(nil), current.Bytes()...))
					current.Reset()
				}
			} else {
				current.Write(line)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if current.Len() > 0 {
		docs = append(docs, current.Bytes())
	}
	return docs, nil
}

func main() {
	strict := flag.Bool("strict", false, "reject duplicate mapping keys (YAMLToJSONStrict)")
	flag.Parse()
	stream, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "yamlcheck:", err)
		os.Exit(2)
	}
	docs, err := documents(stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "yamlcheck:", err)
		os.Exit(2)
	}
	convert := yaml.YAMLToJSON
	if *strict {
		convert = yaml.YAMLToJSONStrict
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, doc := range docs {
		converted, err := convert(doc)
		var line []byte
		if err != nil {
			line, _ = json.Marshal(map[string]string{"error": err.Error()})
		} else if trimmed := bytes.TrimSpace(converted); len(trimmed) == 0 || string(trimmed) == "null" {
			continue
		} else {
			line, _ = json.Marshal(map[string]json.RawMessage{"json": trimmed})
		}
		out.Write(line)
		out.WriteByte('\n')
	}
}
