//! Rendering a conversation with the GGUF's own Jinja chat template.
//!
//! llama.cpp's `apply_chat_template` recognises templates by pattern and re-implements them in
//! C++; for SmolLM2 that drops the default system prompt the model was trained with. So we read
//! `tokenizer.chat_template` from the GGUF and render it with minijinja (plus the Python string
//! methods that Hugging Face templates use), so prompts match the model card's exactly.

use minijinja::{Environment, Error as JinjaError, ErrorKind, context};

use super::Message;
use crate::{Error, Result};

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Used when a GGUF carries no template: ChatML, which SmolLM2 and many others use.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' \
    + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}\
    {{ '<|im_start|>assistant\\n' }}{% endif %}";

impl ChatTemplate {
    /// Compiles `source`. `bos_token` and `eos_token` are exposed to the template as variables.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(format!("cannot compile: {e:#}")))?;
        Ok(ChatTemplate { env, bos_token: bos_token.into(), eos_token: eos_token.into() })
    }

    /// Renders `messages`, ending with the assistant's header when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
        .map_err(|e| Error::Template(format!("cannot render: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template, as its GGUF carries it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_gets_its_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "", "<|im_end|>").unwrap();
        let out = t.render(&[Message::user("Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% if messages|length == 0 %}{{ raise_exception('no messages') }}{% endif %}\
                   {{ messages[0]['content'].strip() }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[Message::user("  x  ")], false).unwrap(), "x");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("no messages"), "{err}");
    }
}
