/**
 * The confirmation of an action: what it will do (for a filter, how many
 * tasks it matches now) and one button that POSTs it. Nothing changes until
 * that button is pressed.
 */
import type { Html } from "../html.ts"
import { html } from "../html.ts"
import type { PageContext } from "../layout.ts"
import { csrfInput, page } from "../layout.ts"
import type { Section } from "../layout.ts"

/** The confirmation page. */
export const render = (
  context: PageContext,
  data: {
    readonly section: Section
    readonly title: string
    /** What the action does, in a sentence. */
    readonly description: Html | string
    /** Where the form POSTs. */
    readonly action: string
    readonly fields: Readonly<Record<string, string | undefined>>
    readonly button: string
    /** Whether the action destroys or interrupts something (delete, cancel): its button is red. */
    readonly danger: boolean
    readonly back: string
    /** False when there is nothing to do: the page says so and shows no button. */
    readonly possible: boolean
  }
): Html =>
  page(
    context,
    { title: data.title, section: data.section, live: false },
    html`<h1>${data.title}</h1>
<p data-testid="confirm-description">${data.description}</p>
${
      data.possible
        ? html`<form method="post" action="${data.action}">${csrfInput(context)}${
          Object.entries(data.fields).filter(([, v]) => v !== undefined).map(([k, v]) =>
            html`<input type="hidden" name="${k}" value="${v}">`
          )
        }<div class="actions"><button type="submit" class="${data.danger ? "danger" : "primary"}">${data.button}</button> <a href="${data.back}">Back</a></div></form>`
        : html`<p><a href="${data.back}">Back</a></p>`
    }`
  )
