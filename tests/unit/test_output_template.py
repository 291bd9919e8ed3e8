"""The Go template engine against Go's text/template and docker-cli's templates package.

Each expected string is what `template.New("").Funcs(templates.basicFunctions).Parse(t).Execute(w, data)` prints
in Go (text/template semantics, docker-cli/templates/templates.go functions), written down here so no Go or
Docker is needed at test time.
"""

from __future__ import annotations

import pytest

from pyctr.output.template import GoStruct, Stringer, TemplateError, go_json, go_print, parse, render

DATA = {
    "A": "x", "B": 0, "L": ["a", "b"], "M": {"k": "v", "a": None}, "N": None, "E": [], "Num": [1, 2],
    "Html": "<a&b>", "F": 1.5, "T": True,
}


@pytest.mark.parametrize("template,expected", [
    # fields, maps, nil
    ("{{.A}}", "x"),
    ("{{.M.k}}", "v"),
    ("{{.M}}", "map[a:<nil> k:v]"),
    ("{{.L}}", "[a b]"),
    ("{{.N}}", "<no value>"),
    ("{{.Nope}}", "<no value>"),           # a missing map key (missingkey=default)
    ("{{.M.a}}", "<no value>"),
    ("{{.}}", "map[A:x B:0 E:[] F:1.5 Html:<a&b> L:[a b] M:map[a:<nil> k:v] N:<nil> Num:[1 2] T:true]"),
    # range, with its variables and else
    ("{{range $i, $e := .L}}{{$i}}={{$e}};{{end}}", "0=a;1=b;"),
    ("{{range $e := .L}}{{$e}}{{end}}", "ab"),
    ("{{range .L}}[{{.}}]{{end}}", "[a][b]"),
    ("{{range .E}}x{{else}}empty{{end}}", "empty"),
    ("{{range .N}}x{{else}}nil{{end}}", "nil"),
    ("{{range $k, $v := .M}}{{$k}}:{{$v}} {{end}}", "a:<no value> k:v "),  # maps in key order
    ("{{range .Num}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", "1"),
    ("{{range .Num}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}", "2"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .L}}{{$.A}}{{end}}", "xx"),
    # if / else if / else, with, and/or/not
    ("{{if .A}}yes{{end}}", "yes"),
    ("{{if and .A .B}}yes{{else}}no{{end}}", "no"),
    ("{{if or .B .A}}yes{{else}}no{{end}}", "yes"),
    ("{{and .A .B}}|{{or .B .A}}|{{or .B .E}}|{{and .A .L}}", "0|x|[]|[a b]"),  # the deciding operand
    ("{{not .B}} {{not .A}}", "true false"),
    ('{{if eq .A "y"}}1{{else if eq .A "x"}}2{{else}}3{{end}}', "2"),
    ("{{with .M}}{{.k}}{{end}}", "v"),
    ("{{with .N}}n{{else}}none{{end}}", "none"),
    ("{{with $v := .A}}{{$v}}{{end}}", "x"),
    # variables
    ("{{$x := 5}}{{$x}}{{$x = 6}}{{$x}}", "56"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    # functions of text/template
    ("{{len .L}} {{len .M}} {{len \"héllo\"}}", "2 2 6"),        # len of a string counts bytes
    ('{{index .L 1}} {{index .M "k"}} {{index .M "zz"}}', "b v <no value>"),
    ('{{printf "%s-%d" .A 3}}', "x-3"),
    ('{{printf "%5s|%-5s|%05d|%x|%q|%t|%v" "a" "b" 42 255 "hi" true .L}}', '    a|b    |00042|ff|"hi"|true|[a b]'),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "%d" "a"}}', "%!d(string=a)"),
    ('{{printf "x" 1}}', "x%!(EXTRA int=1)"),
    ('{{printf "%.2f" .F}}', "1.50"),
    ('{{print 1 2 "a" 3}}', "1 2a3"),                        # spaces only between non-string operands
    ('{{println "a" 1}}', "a 1\n"),
    ('{{eq 1 2 1}} {{ne "a" "b"}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}',
     "true true true true true false"),
    ('{{.A | printf "%s!"}}', "x!"),
    ('{{"abc" | printf "%q"}}', '"abc"'),
    ("{{(index .L 0)}}", "a"),
    # docker-cli's functions
    ("{{json .L}}", '["a","b"]'),
    ("{{json .Html}}", '"<a&b>"'),                          # docker-cli turns HTML escaping off
    ("{{json .M}}", '{"k":"v","a":null}'),
    ("{{json .F}} {{json .T}} {{json .N}} {{json .Nope}}", "1.5 true null null"),
    ('{{upper "abc"}} {{lower "ABC"}}', "ABC abc"),
    ('{{title "hello world-foo_bar"}}', "Hello World-Foo_bar"),  # strings.Title: '_' is part of a word
    ('{{truncate "abcdef" 3}}|{{truncate "ab" 3}}', "abc|ab"),
    ('{{pad "a" 1 2}}|{{pad "" 1 2}}|', " a  ||"),
    ('{{split "a,b,c" ","}}', "[a b c]"),
    ('{{join (split "a,b" ",") "-"}} {{join .Num "+"}} {{join .N ","}}', "a-b 1+2 "),
    # literals, trimming, comments
    ('{{"a\\tb"}}|{{`a\\tb`}}', "a\tb|a\\tb"),
    ("{{1.5}} {{0x10}} {{'a'}} {{1e3}} {{-2}} {{true}}", "1.5 16 97 1000 -2 true"),
    ("a  {{- .A -}}  b", "axb"),
    ("a \n {{- /* note */ -}} \n b", "ab"),
    ("{{/* comment */}}x", "x"),
    ("{{- .A}}\n", "x\n"),
])
def test_go_template_semantics(template, expected):
    assert render(template, DATA) == expected


CONTEXT = GoStruct("*formatter.ContainerContext", {"ID": "abc", "Names": "web", "Platform": Stringer(
    "linux/amd64", {"architecture": "amd64", "os": "linux"})}, {"Label": lambda k: {"tier": "db"}.get(k, "")},
    json_keys=("ID", "Names", "Platform"))


@pytest.mark.parametrize("template,expected", [
    ('{{.Label "tier"}}|{{.Label "none"}}', "db|"),
    ('{{"tier" | .Label}}', "db"),
    ("{{.Platform}} {{json .Platform}}", 'linux/amd64 {"architecture":"amd64","os":"linux"}'),
    ("{{json .}}", '{"ID":"abc","Names":"web","Platform":{"architecture":"amd64","os":"linux"}}'),
    ("{{if .ID}}{{.Names}}{{end}}", "web"),
])
def test_struct_contexts(template, expected):
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize("template,data,message", [
    # a struct has no such field: Docker's exact error (position = line:byte of the node)
    ("{{.Nope}}", CONTEXT, 'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type '
                           "*formatter.ContainerContext"),
    ("x\n {{.Nope}}", CONTEXT, 'template: :2:3: executing "" at <.Nope>: can\'t evaluate field Nope in type '
                               "*formatter.ContainerContext"),
    ("{{.A.B}}", DATA, 'template: :1:2: executing "" at <.A.B>: can\'t evaluate field B in type string'),
    ("{{.N.X}}", DATA, 'template: :1:2: executing "" at <.N.X>: nil pointer evaluating interface {}.X'),
    ("{{upper .Nope}}", DATA, 'template: :1:8: executing "" at <.Nope>: invalid value; expected string'),
    ("{{upper .B}}", DATA, 'template: :1:8: executing "" at <.B>: wrong type for value; expected string; got int'),
    ("{{index .L 5}}", DATA, 'template: :1:2: executing "" at <index>: error calling index: index out of range: 5'),
    ('{{eq .A 1}}', DATA, 'template: :1:2: executing "" at <eq>: error calling eq: incompatible types for comparison'),
    ("{{len .B}}", DATA, 'template: :1:2: executing "" at <len>: error calling len: len of type int'),
    ('{{join .A ","}}', DATA, 'template: :1:2: executing "" at <join>: error calling join: expected slice, got string'),
    ("{{range .A}}{{end}}", DATA, 'template: :1:8: executing "" at <{{range .A}}{{end}}>: range can\'t iterate '
                                  "over x"),
    ("{{.M.k.NetworkSettingsX}}", DATA, 'template: :1:2: executing "" at <.M.k.NetworkSettings...>: can\'t evaluate '
                                        "field NetworkSettingsX in type string"),
    ('{{.ID "x"}}', CONTEXT, 'template: :1:2: executing "" at <.ID>: ID has arguments but cannot be invoked as '
                             "function"),
])
def test_execution_errors(template, data, message):
    with pytest.raises(TemplateError) as e:
        render(template, data)
    assert str(e.value) == message
    assert e.value.exit_code == 1  # docker-cli exits 1 on a failing template


@pytest.mark.parametrize("template,message", [
    ("{{.A", "unclosed action"),
    ("{{", "unclosed action"),
    ("{{frob .A}}", 'function "frob" not defined'),
    ("{{if .A}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{}}", "missing value for command"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{/* x }}", "unclosed comment"),
    ("x\n{{.A", "unclosed action"),
])
def test_parse_errors_read_as_dockers(template, message):
    with pytest.raises(TemplateError) as e:
        parse(template)
    line = template.count("\n") + 1 if message != "unexpected EOF" else 1
    assert str(e.value) == f"template parsing error: template: :{line}: {message}"


def test_go_print_and_json_encoding():
    assert go_print(None) == "<no value>" and go_print([None]) == "[<nil>]"
    # fmt's %v of float64: shortest digits, %e from exponent 6 (fmt.Println(1e6) prints 1e+06) and below -4
    assert [go_print(f) for f in (1e21, 100000.0, 0.0001, 1e6, 1234567.0, 123456.789, 0.00001, -2.5, 1.5e-7)] == [
        "1e+21", "100000", "0.0001", "1e+06", "1.234567e+06", "123456.789", "1e-05", "-2.5", "1.5e-07"]
    # encoding/json escapes <>& unless told not to; MarshalJSON contexts always escape
    assert go_json("<a&b>", escape_html=True) == '"\\u003ca\\u0026b\\u003e"'
    assert go_json("<a&b>") == '"<a&b>"'
    assert go_json("tab\there\u2028\x01") == '"tab\\there\\u2028\\u0001"'
    assert go_json(GoStruct("t", {"b": "<", "a": 1}, json_keys=("b", "a"))) == '{"a":1,"b":"\\u003c"}'
    assert go_json({"x": [1, 2.5, True, None]}) == '{"x":[1,2.5,true,null]}'
    assert [go_json(f) for f in (1.0, 0.00001, 1e21, 1.5e-7, 123456789.5)] == [
        "1", "0.00001", "1e+21", "1.5e-7", "123456789.5"]
