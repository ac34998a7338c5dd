// Progressive enhancement only: every journey must also work without
// JavaScript. Loaded as a module (type="module") so browsers that cannot run
// GOV.UK Frontend's ES module bundle skip it entirely, as the GOV.UK Frontend
// documentation describes. Kept in a static file so the Content Security Policy
// does not need to allow inline scripts.
import { initAll } from '/static/vendor/govuk/govuk-frontend.min.js'

// The page template also adds these classes from an inline script; repeat it
// here in case a strict CSP blocked that script.
document.body.classList.add('js-enabled', 'govuk-frontend-supported')

initAll()
