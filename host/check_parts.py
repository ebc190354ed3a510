#!/usr/bin/env python3
"""Checks that each part of host/ includes only the headers of the parts it
may use (the table in host/meson.build), in the one include style
"part/file.hpp". Run by the build on every compile; a violation fails it:

    check_parts.py HOST_DIR STAMP PART=ALLOWED,... ...

A part is a folder of host/ (or a file such as main.cpp) named in the table.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.M)


def main():
    host, stamp, table = sys.argv[1], sys.argv[2], sys.argv[3:]
    allowed = {}
    for entry in table:
        part, _, deps = entry.partition('=')
        allowed[part] = set(d for d in deps.split(',') if d)
    parts = {p for p in allowed if not p.endswith('.cpp')}
    errors = []
    for part in sorted(allowed):
        path = os.path.join(host, part)
        if not os.path.exists(path):
            errors.append(f'{part}: named in the table of parts but {path} does not exist')
            continue
        if os.path.isdir(path):
            files = [os.path.join(path, f) for f in sorted(os.listdir(path))
                     if f.endswith(('.cpp', '.hpp', '.h'))]
        else:
            files = [path]
        for f in files:
            with open(f, encoding='utf-8') as src:
                text = src.read()
            for m in INCLUDE.finditer(text):
                delim, name = m.group(1), m.group(2)
                line = text.count('\n', 0, m.start()) + 1
                where = os.path.relpath(f, os.path.dirname(host))
                top = name.split('/')[0]
                if delim == '"' and (name.startswith('.') or '/' not in name):
                    errors.append(f'{where}:{line}: #include "{name}": write "part/file.hpp" '
                                  f'(the parts: {", ".join(sorted(parts))})')
                    continue
                if top not in parts:
                    continue  # a system or library header
                if delim == '<':
                    errors.append(f'{where}:{line}: #include <{name}>: a host header is included as "{name}"')
                elif top != part and top not in allowed[part]:
                    may = ', '.join(sorted(allowed[part])) or 'no other part'
                    errors.append(f'{where}:{line}: #include "{name}": {part} may not use {top} '
                                  f'({part} may use {may}; see host/meson.build)')
    if errors:
        sys.stderr.write('host parts: dependencies that the architecture does not allow '
                         '(docs/architecture.md):\n' + '\n'.join(errors) + '\n')
        return 1
    with open(stamp, 'w', encoding='utf-8') as out:
        out.write('ok\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
