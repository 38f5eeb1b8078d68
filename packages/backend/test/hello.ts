import t from 'tap'
import { acceptsHtml, escapeHtml, helloResponse } from '../src/hello.js'

/** What Chromium 120+ sends when it loads a page, and when it loads an icon. */
const CHROMIUM_PAGE =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7'
const CHROMIUM_ICON = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8'

t.test('acceptsHtml: text/html named with a q above 0, and nothing else', async t => {
  const cases: Array<[string | undefined, boolean, string]> = [
    [CHROMIUM_PAGE, true, 'Chromium loading a page'],
    ['text/html', true, 'text/html alone'],
    ['TEXT/HTML', true, 'media types are case-insensitive'],
    ['application/json, text/html;level=1', true, 'with a parameter'],
    ['text/html ; charset=utf-8 ; q=0.5', true, 'spaces around ; and a q below 1'],
    ['text/html;Q=1', true, 'Q in capitals'],
    [undefined, false, 'no Accept: text'],
    ['', false, 'an empty Accept: text'],
    ['*/*', false, "curl's */*: text"],
    ['text/*', false, 'text/* is a wildcard, not text/html'],
    [CHROMIUM_ICON, false, 'Chromium loading an icon'],
    ['text/html;q=0', false, 'q=0: not acceptable'],
    ['text/html;q=0.000', false, 'q=0.000: not acceptable'],
    ['text/html;q=', false, 'an empty q counts as 0'],
    ['text/html;q=x', false, 'a q that is not a number counts as 0'],
    ['text/htmlx, application/text/html', false, 'other types that contain the words'],
    ['application/xhtml+xml', false, 'XHTML alone'],
  ]
  for (const [accept, expected, why] of cases) t.equal(acceptsHtml(accept), expected, `${why}: ${JSON.stringify(accept)}`)
})

t.test('escapeHtml writes the five special characters as references', async t => {
  t.equal(escapeHtml(`a&b<c>d"e'f`), 'a&#38;b&#60;c&#62;d&#34;e&#39;f', 'each one escaped')
  t.equal(escapeHtml('backend-5000'), 'backend-5000', 'an ordinary id is unchanged')
})

t.test('helloResponse: the text line, or a page with the same words and an empty icon', async t => {
  const text = helloResponse('text', 'b0')
  t.same(
    [text.status, text.headers, text.body.toString()],
    [200, { 'content-type': 'text/plain; charset=utf-8', vary: 'Accept' }, 'Hello, World! from b0'],
    'text: the line as before, with Vary: Accept',
  )
  const html = helloResponse('html', 'b0')
  t.same(html.headers, { 'content-type': 'text/html; charset=utf-8', vary: 'Accept' }, 'html: text/html, Vary: Accept')
  const page = html.body.toString()
  t.match(page, /^<!doctype html>\n/, 'a standards-mode document')
  t.match(page, /<p id="hello">Hello, World! from b0<\/p>/, 'that shows the same words')
  t.match(page, /<link rel="icon" href="data:,">/, 'and declares an empty icon, so no favicon is fetched')
  t.ok(page.length < 300, `tiny (${page.length} bytes)`)
  const hostile = helloResponse('html', '<script>alert(1)</script>').body.toString()
  t.notMatch(hostile, /<script>/, 'an id is escaped: the page holds no markup from it')
  t.match(hostile, /from &#60;script&#62;alert\(1\)&#60;\/script&#62;<\/p>/, 'it shows as text')
})
